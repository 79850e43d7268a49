"""``fastgrad.scipy.misc``: ``logsumexp``, where old SciPy (and old autograd) kept it.
It is ``fastgrad.scipy.special.logsumexp``."""

from .special import logsumexp

__all__ = ["logsumexp"]
