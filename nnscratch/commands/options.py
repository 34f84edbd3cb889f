"""The argparse types the commands share: each converts an option's text and refuses a value out
of range with one line that names the option (argparse adds ``argument --lr:``) and says what
it must be, before anything is read or written.

Standard library only: a command's options are built before it imports anything heavy.
"""

import argparse


def checked(convert, test, wanted):
    """An argparse type: ``convert`` the text, and refuse a value that fails ``test``; the
    error (argparse names the option) says it must be ``wanted``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


# float32's largest finite and smallest normal values: the precision of the weights, and of
# every rate applied to them (a rate of 1e-50 would be 0, one of 1e39 inf)
FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38
MAX_EPOCHS = 1_000_000      # more is a typo (and fit lists a rate per epoch)
MAX_STEPS = 1_000_000       # an attack's iterations per image: more is a typo, not a budget
EPOCHS = checked(int, lambda n: 1 <= n <= MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS:,}")
COUNT = checked(int, lambda n: n >= 1, "an integer >= 1")
SEED = checked(int, lambda n: 0 <= n < 2 ** 63, "an integer from 0 to 2**63 - 1")
CLASS = checked(int, lambda n: n >= 0, "a class number >= 0")
RATE = checked(float, lambda v: FLOAT32_TINY <= v <= FLOAT32_MAX,
               "a positive number within float32's range (1.2e-38 to 3.4e38)")
PENALTY = checked(float, lambda v: 0 <= v <= FLOAT32_MAX, "a number >= 0, finite in float32")
FRACTION = checked(float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")
# a wider blur than 10 pixels leaves nothing of a 28- or 32-pixel image but its mean
SIGMA = checked(float, lambda v: 0 <= v <= 10, "a number from 0 (no blur) to 10 pixels")
PATH = checked(str, lambda text: text != "", "a path, not an empty string")
# an attack's bound (in the [0, 1] pixel scale, but an L2 bound may exceed 1), step, iterations
EPS = checked(float, lambda v: 0 <= v <= FLOAT32_MAX, "a number >= 0, finite in float32")
STEP = checked(float, lambda v: FLOAT32_TINY <= v <= FLOAT32_MAX,
               "a positive number within float32's range (1.2e-38 to 3.4e38)")
STEPS = checked(int, lambda n: 1 <= n <= MAX_STEPS, f"an integer from 1 to {MAX_STEPS:,}")
