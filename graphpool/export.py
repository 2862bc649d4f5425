r"""Deployment: :func:`torch.export.export` and ``torch.onnx.export(..., dynamo=True)`` of
models with graphpool readouts, and their check in onnxruntime.

Nothing needs to be passed to the exporters: while :func:`torch.export.export` traces
(the dynamo ONNX exporter runs it), every readout is built of standard operators (see
:mod:`graphpool.kernels.export`): scatters for index and ptr groupings, reductions
over a padded view for uniform and mask groupings, ``TopK`` for the sorts. The number
of nodes and the number of sets stay symbolic, read from the inputs when the program
runs:

=================================  ==============================================
grouping passed to the readout     number of sets ``B`` in the exported program
=================================  ==============================================
``ptr`` (``[B + 1]``)              ``ptr.size(0) - 1``
batch vector, no ``num_graphs``    ``batch.max() + 1`` (as in eager)
``Segments.from_mask(mask)``       ``mask.size(0)``
``Segments.uniform(B, S)``         ``B`` from a shape, e.g. ``x.size(0)``
=================================  ==============================================

A Python ``int`` passed as ``num_graphs`` is a constant of the program. Mark the
inputs' sizes dynamic with ``dynamic_shapes`` (``torch.export.Dim.DYNAMIC``).
:data:`SUPPORT` says how each readout exports on each grouping; the legacy exporter
(``dynamo=False``) is refused with a :class:`~graphpool.GraphpoolError`.

Example:
    >>> import torch, graphpool as gp
    >>> class Pool(torch.nn.Module):
    ...     def forward(self, x, ptr):
    ...         return gp.readout(x, ptr=ptr, reduce="max")
    >>> dyn = torch.export.Dim.DYNAMIC
    >>> program = torch.export.export(Pool(), (torch.randn(5, 2), torch.tensor([0, 2, 5])),
    ...                               dynamic_shapes=({0: dyn}, {0: dyn}))
    >>> x, ptr = -torch.arange(1., 15.).view(7, 2), torch.tensor([0, 3, 3, 7])
    >>> program.module()(x, ptr).tolist()
    [[-1.0, -2.0], [0.0, 0.0], [-7.0, -8.0]]
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Sequence

import torch
from torch import Tensor

from .errors import GraphpoolError, describe
from .readouts import READOUTS

__all__ = ["GROUPINGS", "SUPPORT", "support_table", "run_onnx", "max_difference"]

#: The groupings of :data:`SUPPORT`: a (sorted or unsorted) batch vector, a CSR ``ptr``,
#: uniform sets (feature maps) and a padded batch with its mask.
GROUPINGS = ("index", "ptr", "uniform", "mask")

_SCATTER = "ScatterElements (index, ptr); a reduction of the padded view (uniform, mask)"
_PASSES = "those reductions and per-set broadcasts (Gather)"
_PADDED = "a padded batch sized by the largest set when run; TopK sorts"
_HOW = {
    **dict.fromkeys(("sum", "mean", "max", "min", "prod", "vpa"), _SCATTER),
    "count": "the counts: a scatter of ones, or the mask's sum",
    **dict.fromkeys(("var", "std", "logsumexp", "softmax", "powermean", "gem"), _PASSES),
    "median": _PADDED, "quantile": _PADDED,
    "sort": "a padded batch; TopK, whose ties keep the node order (a stable sort)",
    "attention": "a softmax per set and a scatter sum",
    "latentattention": "a softmax per set and a scatter sum",
    "set2set": "an LSTM, a softmax per set and a scatter sum",
    "deepsets": "the node network and a scatter sum",
    "gmt": "a padded batch sized by the largest set when run; attention",
    "settransformer": "a padded batch (uniform, mask: of their size); attention",
    "multi": "each of its readouts, as above",
    "GlobalPool2d": "its readout over each image's pixels, as above",
}
_NEEDS = {"settransformer": {"index": "max_num_nodes", "ptr": "max_num_nodes"},
          "GlobalPool2d": {"index": "n/a", "ptr": "n/a"}}

#: ``name -> {"how": ..., grouping: "yes" or what the readout needs}`` for every readout
#: of :data:`~graphpool.readouts.READOUTS`, :class:`~graphpool.MultiReadout` and
#: :class:`~graphpool.grid.GlobalPool2d`. ``"max_num_nodes"``: build it with a fixed
#: padded size to export over that grouping (without it, export raises a
#: :class:`~graphpool.GraphpoolError`; a larger set is an error when the model runs);
#: ``"n/a"``: a grouping the module does not take (maps are uniform or masked).
SUPPORT: Dict[str, Dict[str, str]] = {
    name: {"how": _HOW[name], **{g: _NEEDS.get(name, {}).get(g, "yes") for g in GROUPINGS}}
    for name in (*READOUTS, "multi", "GlobalPool2d")}


def support_table() -> str:
    """:data:`SUPPORT` as the Markdown table of ``docs/export.md``.

    Example:
        >>> support_table().splitlines()[0]
        '| readout | index | ptr | uniform | mask | exported as |'
    """
    lines = ["| readout | " + " | ".join(GROUPINGS) + " | exported as |",
             "|---" * (len(GROUPINGS) + 2) + "|"]
    for name, row in SUPPORT.items():
        cells = [row[g] if row[g] in ("yes", "n/a") else f"`{row[g]}=`" for g in GROUPINGS]
        lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {row['how']} |")
    return "\n".join(lines)


def run_onnx(program: Any, *inputs: Tensor) -> List[Tensor]:
    r"""Run an ONNX model in onnxruntime (CPU) on tensors; returns its outputs as tensors.

    Args:
        program: what ``torch.onnx.export(..., dynamo=True)`` returns, an
            ``onnx.ModelProto``, its bytes or the path of a ``.onnx`` file.
        inputs: one tensor per input of the model, in order.

    Example:
        >>> import torch, graphpool as gp
        >>> class Pool(torch.nn.Module):
        ...     def forward(self, x, batch):
        ...         return gp.readout(x, batch, "max")
        >>> dyn = torch.export.Dim.DYNAMIC
        >>> example = (torch.randn(4, 1), torch.tensor([0, 0, 1, 1]))
        >>> onnx_program = torch.onnx.export(Pool(), example, dynamic_shapes=({0: dyn}, {0: dyn}),
        ...                                  dynamo=True, verbose=False)
        >>> x, batch = torch.tensor([[-3.], [-1.], [-2.]]), torch.tensor([1, 1, 0])
        >>> run_onnx(onnx_program, x, batch)[0].flatten().tolist()
        [-2.0, -1.0]
    """
    try:
        import onnxruntime
    except ImportError:
        raise GraphpoolError("run_onnx", "program", "onnxruntime to be installed",
                             "an environment without it",
                             "pip install 'graphpool[export]'") from None
    proto = getattr(program, "model_proto", program)
    if hasattr(proto, "SerializeToString"):
        proto = proto.SerializeToString()
    if not isinstance(proto, (bytes, str)) and not hasattr(proto, "__fspath__"):
        raise GraphpoolError("run_onnx", "program", "an ONNXProgram, an onnx.ModelProto, "
                             "its bytes or a path", describe(program),
                             "pass what torch.onnx.export(..., dynamo=True) returned")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # its errors come back as a GraphpoolError, not twice
    try:
        session = onnxruntime.InferenceSession(
            proto if isinstance(proto, bytes) else str(proto), options,
            providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime's own kinds: NoSuchFile, InvalidProtobuf, ...
        given = (repr(str(program)) if isinstance(program, (str, os.PathLike)) else
                 f"a {type(program).__name__}")  # (not its repr: a model's is the whole graph)
        raise GraphpoolError("run_onnx", "program", "an ONNX model onnxruntime can load",
                             f"{given}: {_first_line(err)}",
                             "pass what torch.onnx.export(..., dynamo=True) returned, or the "
                             "path of the .onnx file it saved") from None
    specs = session.get_inputs()
    names = [i.name for i in specs]
    if len(names) != len(inputs) or not all(isinstance(t, Tensor) for t in inputs):
        raise GraphpoolError("run_onnx", "inputs", f"{len(names)} tensors, one per input of "
                             f"the model ({', '.join(names)})",
                             ", ".join(describe(t) for t in inputs) or "none",
                             "pass the tensors the model was exported with, in order")
    for i, (spec, t) in enumerate(zip(specs, inputs)):
        dtype = _ONNX_TYPES.get(spec.type)
        dims = [d if isinstance(d, int) else None for d in spec.shape]
        if (dtype is not None and t.dtype != dtype) or t.dim() != len(dims) or any(
                d is not None and d != n for d, n in zip(dims, t.shape)):
            shape = ", ".join("*" if d is None else str(d) for d in dims)
            raise GraphpoolError("run_onnx", f"inputs[{i}]", f"a {dtype or spec.type} tensor "
                                 f"of shape ({shape}) for the model's input {spec.name!r} "
                                 "(* any size)", describe(t),
                                 "pass it as it was exported: the same dtype (convert with "
                                 ".to(...)) and number of dims")
    feeds = {name: t.detach().cpu().numpy() for name, t in zip(names, inputs)}
    try:
        outputs = session.run(None, feeds)
    except Exception as err:  # onnxruntime's Fail, InvalidArgument, RuntimeException
        raise GraphpoolError("run_onnx", "inputs", "inputs the model can run on",
                             f"onnxruntime failed: {_first_line(err)}",
                             "check their values: a malformed grouping (a ptr not from 0 to "
                             "N or decreasing, a set id outside [0, B), a set larger than "
                             "max_num_nodes) makes the exported model fail") from None
    return [torch.from_numpy(out) for out in outputs]


#: onnxruntime's input types and the torch dtypes they take
_ONNX_TYPES = {"tensor(float)": torch.float32, "tensor(double)": torch.float64,
               "tensor(float16)": torch.float16, "tensor(bfloat16)": torch.bfloat16,
               "tensor(int64)": torch.int64, "tensor(int32)": torch.int32,
               "tensor(int16)": torch.int16, "tensor(int8)": torch.int8,
               "tensor(uint8)": torch.uint8, "tensor(bool)": torch.bool}


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def max_difference(got: Sequence[Tensor], want: Sequence[Tensor]) -> float:
    r"""The largest :math:`|g - w|` over the outputs, where equal infinities and ``nan``
    against ``nan`` count as equal; ``inf`` if a shape, an infinity or a ``nan`` differs.

    Example:
        >>> nan, inf = float("nan"), float("inf")
        >>> max_difference([torch.tensor([1., nan, -inf])], [torch.tensor([1.5, nan, -inf])])
        0.5
        >>> max_difference([torch.tensor([inf])], [torch.tensor([1.])])
        inf
    """
    worst = 0.0
    if len(got) != len(want):
        return math.inf
    for g, w in zip(got, want):
        g, w = torch.as_tensor(g).double(), torch.as_tensor(w).double()
        if g.shape != w.shape:
            return math.inf
        same = (g == w) | (g.isnan() & w.isnan())
        if not same.all():
            gap = (g - w).abs()
            worst = max(worst, float(torch.where(gap.isnan(), math.inf, gap)[~same].max()))
    return worst
