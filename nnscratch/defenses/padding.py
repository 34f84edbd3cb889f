"""Border handling for the image filters, as matrices: scipy.ndimage's modes.

A filter whose window runs past the image's border reads a padded image. Along one axis of
length n, padding by ``before`` and ``after`` pixels is a linear map, the 0/1 matrix::

    P: (before + n + after, n),   P[p, i] = 1 where padded position p copies pixel i

(one 1 per row; a zero row where ``constant`` mode reads 0). An image x (N, C, H, W) padded
along both axes is ``P_h @ x @ P_w^T``, and the pullback of the padding is its adjoint,
``P_h^T @ g @ P_w``: the gradient of every copied border pixel is folded back onto the pixel
it came from. Both are products with 0/1 entries, so the padding itself is exact.

The modes, for the row ``a b c d`` (scipy's names, NumPy's ``np.pad`` name in brackets)::

    reflect    d c b a | a b c d | d c b a      (symmetric)
    mirror       d c b | a b c d | c b a        (reflect)
    nearest    a a a a | a b c d | d d d d      (edge)
    constant   0 0 0 0 | a b c d | 0 0 0 0      (constant)

A pad longer than the row reflects again (the pattern repeats with period 2n for reflect,
2n - 2 for mirror), as scipy.ndimage does.
"""

import numpy as np

MODES = ("reflect", "mirror", "nearest", "constant")


def padding_matrix(n, before, after, mode):
    """P (before + n + after, n) in float64 on the host, for ``mode`` in MODES (checked by the
    caller; see the module docstring)."""
    p = np.arange(-before, n + after)                  # padded positions, 0 .. n-1 the row
    if mode == "reflect":
        p = p % (2 * n)
        source = np.where(p < n, p, 2 * n - 1 - p)
    elif mode == "mirror":
        period = max(2 * n - 2, 1)                     # a single pixel mirrors onto itself
        p = p % period
        source = np.where(p < n, p, period - p)
    elif mode == "nearest":
        source = np.clip(p, 0, n - 1)
    else:                                              # constant
        source = np.where((p >= 0) & (p < n), p, -1)   # -1 matches no pixel: a zero row
    return (source[:, None] == np.arange(n)).astype(np.float64)


def along_rows_and_columns(a_h, x, a_w):
    """a_h @ x @ a_w^T: x (N, C, H, W), a_h (H', H), a_w (W', W) -> (N, C, H', W')."""
    return (a_h @ x) @ a_w.T
