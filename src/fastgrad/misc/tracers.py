"""``const_graph``: autograd's cached-graph helper; here simply the function (the tape is
recorded afresh each call, which is what the cache saved in autograd)."""

import functools


def const_graph(fun, *args, **kwargs):
    partial_fun = functools.partial(fun, *args, **kwargs)

    @functools.wraps(fun)
    def wrapped(*a):
        return partial_fun(*a)

    return wrapped
