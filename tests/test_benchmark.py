"""The benchmark machinery: every candidate is checked against graphpool before timing.

No wall-clock assertions: timing lives in benchmarks/run.py, not in tests.
"""
from __future__ import annotations

import pytest
import torch

from benchmarks import suite as bench

TINY = [
    bench.Case("tiny sorted", "graph", torch.float32, (6, 5, 3), 6),
    bench.Case("tiny unsorted", "graph", torch.float32, (6, 5, 3), 6, sorted=False),
    bench.Case("tiny bf16", "graph", torch.bfloat16, (6, 5, 3), 6),
    bench.Case("tiny image", "image", torch.float32, (2, 3, 4, 4)),
    bench.Case("tiny message passing", "edges", torch.float32, (6, 40, 3), 6, sorted=False),
]


@pytest.mark.parametrize("case", TINY, ids=lambda c: c.regime)
@pytest.mark.parametrize("mode", ["forward", "forward+backward"])
def test_every_candidate_agrees_and_is_timed(case, mode, monkeypatch):
    monkeypatch.setattr(bench, "SAMPLE_MS", 0.01)
    for op in bench.OPS:
        results = bench.run_case(case, op, mode, rounds=1)
        names = {r.candidate for r in results}
        assert "graphpool" in names and len(names) >= 2
        assert all(r.median_ms > 0 for r in results)
        ours = next(r for r in results if r.candidate == "graphpool")
        assert ours.ratio_to_graphpool == 1.0
        if case.kind == "graph":
            assert bench.FRESH in names and "PyG" in names
        if case.kind == "edges":
            assert "PyG" in names


def test_a_candidate_that_disagrees_aborts_the_run(monkeypatch):
    real = bench._graph_candidates

    def with_a_wrong_one(*args):
        cands = real(*args)
        cands["off by one"] = lambda x: cands["PyG"](x) + 1
        return cands
    monkeypatch.setattr(bench, "_graph_candidates", with_a_wrong_one)
    with pytest.raises(AssertionError, match="off by one disagrees with graphpool"):
        bench.run_case(TINY[0], "sum", "forward", rounds=1)


def test_table_and_targets_come_from_the_results(monkeypatch):
    monkeypatch.setattr(bench, "SAMPLE_MS", 0.01)
    cases = [bench.Case("molecules 4x5x3", "graph", torch.float32, (4, 5, 3), 4)]
    results = bench.run(cases, rounds=1, modes=("forward",))
    table = bench.markdown(results)
    assert table.count("| molecules 4x5x3 |") == len(bench.OPS) + len(bench.FAMILY)
    targets = bench.check_targets(results)
    assert {t["target"] for t in targets} >= {f"molecules {op} forward: best peer / graphpool"
                                              for op in (*bench.OPS, *bench.FAMILY)}


@pytest.mark.parametrize("op", ["var", "softmax", "logsumexp"])
def test_a_family_peer_that_disagrees_aborts_the_run(monkeypatch, op):
    real = bench._family_candidates

    def with_a_wrong_one(case, op, batch):
        cands = real(case, op, batch)
        cands["times two"] = lambda x: 2 * cands["graphpool"](x)
        return cands
    monkeypatch.setattr(bench, "_family_candidates", with_a_wrong_one)
    case = bench.Case("molecules 4x5x3", "graph", torch.float32, (4, 5, 3), 4)
    with pytest.raises(AssertionError, match="times two disagrees with graphpool"):
        bench.run_case(case, op, "forward", rounds=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit without a GPU")
def test_bench_on_cuda_without_a_gpu_exits_cleanly(capsys):
    from graphpool.apps.cli import main

    assert main(["bench", "--device", "cuda"]) == 0
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit without a GPU")
def test_benchmark_script_on_cuda_without_a_gpu_exits_cleanly():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "run.py"
    done = subprocess.run([sys.executable, str(script), "--device", "cuda"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no CUDA device" in done.stderr


def test_quick_regimes_are_labelled_with_the_shapes_they_time():
    for case in bench.make_cases(quick=True):
        if case.kind == "image":
            assert case.regime == "image " + "x".join(map(str, case.shape))


def _run_script(monkeypatch, tmp_path, *argv):
    """benchmarks/run.py's main on one tiny regime, with the published folder in tmp."""
    import importlib.util
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "run.py"
    spec = importlib.util.spec_from_file_location("bench_run", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "__file__", str(tmp_path / "run.py"))
    monkeypatch.setattr(module.tempfile, "gettempdir", lambda: str(tmp_path / "scratch"))
    monkeypatch.setattr(bench, "make_cases", lambda quick=False: [
        bench.Case("molecules 4x5x3", "graph", torch.float32, (4, 5, 3), 4)])
    monkeypatch.setattr(bench, "peak_forward_allocation", lambda case, op: 0)
    monkeypatch.setattr(sys, "argv", ["run.py", "--rounds", "1", "--sample-ms", "0",
                                      "--regimes", "molecules", *argv])  # no training epochs
    assert module.main() == 0


def test_the_benchmark_writes_published_results_only_when_asked(monkeypatch, tmp_path):
    _run_script(monkeypatch, tmp_path)
    assert (tmp_path / "scratch" / "graphpool-bench-cpu.json").is_file()
    assert not (tmp_path / "results").exists()
    _run_script(monkeypatch, tmp_path, "--update")
    assert (tmp_path / "results" / "cpu.json").is_file()
    assert "| molecules 4x5x3 |" in (tmp_path / "results" / "cpu.md").read_text()


def test_the_training_benchmark_checks_its_models_and_times_an_epoch():
    from benchmarks import training

    rows = training.run_training(rounds=1, compile_too=False, batch_sizes=(2048,))
    assert {r["candidate"] for r in rows} == {"graphpool", "PyG", "kernels", "floor"}
    assert all(r["median_s"] > 0 and r["steps"] == 3 for r in rows)  # 4110 graphs
    targets = bench.check_targets([], rows)  # the bounds are never a target's peer
    assert [t["target"] for t in targets] == ["GIN-0 epoch NCI1 batch 2048 eager: PyG / graphpool"]
    (line,) = [r for r in training.markdown(rows).splitlines() if "batch 2048" in r]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["GIN-0 epoch NCI1 batch 2048", "eager", "3"] and len(cells) == 10
    times = {r["candidate"]: r["median_s"] for r in rows}
    assert float(cells[7]) == pytest.approx(times["PyG"] / times["kernels"], abs=0.006)
    assert float(cells[9]) == pytest.approx(times["PyG"] / times["floor"], abs=0.006)


def test_the_floor_model_reads_each_input_once_into_the_output_shape():
    from benchmarks import training

    x = torch.randn(7, 3, requires_grad=True)
    out = training._floor_aggregation()(x, torch.tensor([0, 0, 1, 1, 2, 2, 2]), dim_size=4)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, x.sum(0, keepdim=True).expand(4, 3))
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((7, 3), 4.0))


def test_the_training_check_catches_a_model_that_computes_something_else():
    from benchmarks import training

    (batch,) = training.epoch_batches(4110, root=_tmp())
    models = training.models(batch[0].size(1), 2)
    models["PyG"].head.bias.data[0] += 0.1  # another model (a shift of all logits is none)
    with pytest.raises(AssertionError, match="PyG's (loss|gradients) disagree"):
        training._check_same_step(models, batch)


def _tmp():
    import tempfile

    return tempfile.mkdtemp()


def test_rows_slower_than_the_last_published_run_are_named(monkeypatch):
    monkeypatch.setattr(bench, "SAMPLE_MS", 0.01)
    results = bench.run([TINY[0]], rounds=1, modes=("forward",))
    ours = {r.op: r.median_ms for r in results if r.candidate == "graphpool"}
    previous = [{"regime": "tiny sorted", "dtype": "float32", "op": op, "mode": "forward",
                 "candidate": "graphpool", "median_ms": ms / (2 if op == "max" else 1)}
                for op, ms in ours.items()]
    (target,) = [t for t in bench.check_targets(results, (), previous) if "slower" in t["target"]]
    assert target["value"] == 1 and not target["met"] and "tiny sorted float32 max" in target["target"]
