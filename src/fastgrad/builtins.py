"""autograd's ``builtins``: containers of traced values are ordinary Python containers here.

fastgrad traces through tuples, lists and dicts directly, so ``tuple``, ``list`` and
``dict`` are the built-in types; ``isinstance`` looks through a traced value to the type
of the value inside (``isinstance(x, np.ndarray)`` holds inside ``grad``).
"""

import builtins as _builtins

from ._tensor import Tensor

tuple = _builtins.tuple  # noqa: A001
list = _builtins.list  # noqa: A001
dict = _builtins.dict  # noqa: A001
type = _builtins.type  # noqa: A001
SequenceBox = Tensor
DictBox = Tensor


def isinstance(obj, classinfo):  # noqa: A001
    if _builtins.isinstance(obj, Tensor) and not _builtins.isinstance(obj, classinfo):
        return _builtins.isinstance(obj._data, classinfo)
    return _builtins.isinstance(obj, classinfo)
