"""The IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/).

::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4d bytes    the d sizes, big-endian uint32
    the rest    the elements in C (row-major) order, big-endian

So train-images-idx3-ubyte starts with the "magic number" 0x00000803 (2051) and the sizes
60000, 28, 28; train-labels-idx1-ubyte with 0x00000801 (2049) and 60000.
"""

import math

import numpy as np

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(t).newbyteorder("="): code for code, t in _TYPES.items()}


def read_idx(data):
    """The array stored in IDX bytes ``data``, in native byte order.

    Raises ValueError when the header is not IDX or the payload is not exactly as long as the
    header says (a truncated or padded file).
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise ValueError(f"not an IDX file (first bytes {bytes(data[:4]).hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX header truncated: {len(data)} bytes, {ndim} sizes promised")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_TYPES[data[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"IDX file of shape {shape} should be {expected} bytes, "
                         f"got {len(data)} (truncated or corrupt)")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(array):
    """The IDX bytes of ``array``: the inverse of ``read_idx``.

    Used to compare arrays with the official files' checksums, and by the tests to write files.
    """
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX has no element type for {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + np.ascontiguousarray(array, array.dtype.newbyteorder(">")).tobytes()
