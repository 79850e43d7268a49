"""``fastgrad.numpy.random``: NumPy's random module (random draws are constants)."""

from numpy.random import *  # noqa: F401,F403
from numpy.random import RandomState, default_rng, rand, randint, randn, random, seed, uniform  # noqa: F401
