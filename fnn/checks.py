"""Argument checks shared by every module: each returns the value in its canonical type or
raises naming the argument, what was expected and what arrived.

    n = positive_int("epochs", epochs)         # 3 -> 3; 0, 2.5, True -> ValueError
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def is_int(value) -> bool:
    """True for Python and NumPy integers, never for bools."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(name: str, value) -> int:
    """`value` as an int >= 1, or ValueError naming `name`."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def non_negative_int(name: str, value) -> int:
    """`value` as an int >= 0, or ValueError naming `name`."""
    if not is_int(value) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def optional_positive_int(name: str, value) -> int | None:
    """None, or `value` as an int >= 1."""
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return int(value)


def finite_float(name: str, value, *, low: float = -math.inf, low_open: bool = False) -> float:
    """`value` as a finite float >= low (> low when low_open), or TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    bound = f"> {low:g}" if low_open else f">= {low:g}"
    if not math.isfinite(value) or value < low or (low_open and value == low):
        raise ValueError(f"{name} must be a finite number{'' if low == -math.inf else ' ' + bound}, got {value!r}")
    return value


def non_negative_float(name: str, value) -> float:
    """`value` as a finite float >= 0."""
    return finite_float(name, value, low=0.0)


def positive_float(name: str, value) -> float:
    """`value` as a finite float > 0."""
    return finite_float(name, value, low=0.0, low_open=True)


def fraction(name: str, value) -> float:
    """`value` as a float in [0, 1) (a momentum, a dropout rate, a decay)."""
    value = finite_float(name, value)
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def one_of(name: str, value, choices: Sequence):
    """`value` itself when it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def generator(name: str, rng) -> np.random.Generator:
    """`rng` when it is a numpy.random.Generator (never a seed or a RandomState)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{name} must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def optional_generator(name: str, rng) -> np.random.Generator | None:
    """None, or a numpy.random.Generator."""
    return None if rng is None else generator(name, rng)
