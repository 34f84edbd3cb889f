"""The validators every module uses for its arguments: one ground floor, importing nothing
of the package, so that the engine, the data, the attacks and the defences check a number, a
flag, a choice, a seed or a label array the same way and say the same thing when it is wrong.

Each returns the value it accepted (as a plain int, float or bool where that matters) and
raises TypeError for a value of the wrong kind, ValueError for one of the right kind out of
range; the message names ``what`` was given, what was expected, and what came.
"""

import math
import numbers

import numpy as np


def check_integer(value, what, minimum=1):
    """``value`` as an int if a whole number >= ``minimum``, else an error naming ``what``."""
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be {expected}, got {value!r}")
    if not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{what} must be {expected}, got {value!r}")
    return int(value)


def check_real(value, what, positive=False, below=math.inf):
    """``value`` as a float if finite, >= 0 (> 0 if ``positive``) and < ``below``, else an error."""
    expected = (f"a number in {'(' if positive else '['}0, {below:g})" if below < math.inf
                else f"a finite number {'>' if positive else '>='} 0")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be {expected}, got {value!r}")
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0) and value < below):
        raise ValueError(f"{what} must be {expected}, got {value!r}")
    return float(value)


def check_flag(value, what):
    """A bool, refused if anything else (1 or "yes" would hide a mistake)."""
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return value


def check_choice(value, what, choices):
    """One of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_seed(value, what="seed"):
    """A seed for ``nnscratch.backend.new_rng``: an integer >= 0."""
    return check_integer(value, what, minimum=0)


def check_labels(y, n, what="labels"):
    """``y`` must be an integer array of shape (n,), on either device (CuPy arrays carry NumPy
    dtypes); the values are not read, so the check never syncs a GPU."""
    if not hasattr(y, "dtype") or not hasattr(y, "shape"):
        raise TypeError(f"{what} must be an integer array ({n},), got {type(y).__name__}")
    if tuple(y.shape) != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} must be integers of shape ({n},), got {y.dtype} "
                         f"{tuple(y.shape)}")
    return y
