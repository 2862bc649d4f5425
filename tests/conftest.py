import pytest

import graphpool
from graphpool.kernels import ext
from graphpool import _native

BACKENDS = (["native"] + (["compiled"] if _native.library() is not None else [])
            + (["torch_scatter"] if ext.AVAILABLE else []))


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per available kernel backend."""
    with graphpool.use_backend(request.param):
        yield request.param
