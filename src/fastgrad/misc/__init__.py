"""autograd's ``misc``: ``flatten`` nested containers, ``const_graph``, fixed points,
optimizers."""

from .flatten import flatten  # noqa: F401
from .tracers import const_graph  # noqa: F401
