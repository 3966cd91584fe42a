"""A switch that makes the layers compute padding positions too.

Leaving padding out of the computation gives tensors whose length depends on
the data. Exporters that trace a model into a graph of fixed shapes (torch's
ONNX and `torch.export` routes) cannot follow that, so `export_model` runs
them inside `every_position()`.
"""

import contextlib

_depth = 0


@contextlib.contextmanager
def every_position():
    """Within this context, no layer leaves padding positions out."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def computing_every_position():
    return _depth > 0
