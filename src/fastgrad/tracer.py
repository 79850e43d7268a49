"""autograd's ``tracer`` names, for code that imports them."""

from .extend import Box, getval, isbox, notrace_primitive, primitive  # noqa: F401

__all__ = ["Box", "getval", "isbox", "notrace_primitive", "primitive"]
