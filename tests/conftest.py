import pytest

import graphpool
from graphpool.kernels import ext

BACKENDS = ["native"] + (["torch_scatter"] if ext.AVAILABLE else [])


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test once per installed kernel backend."""
    with graphpool.use_backend(request.param):
        yield request.param
