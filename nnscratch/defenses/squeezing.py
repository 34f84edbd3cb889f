"""Feature squeezing: Xu, Evans & Qi (2018), "Feature Squeezing: Detecting Adversarial Examples
in Deep Neural Networks", section 3. Two squeezers, each a transform of ``preprocessing``:

    MedianFilter(size=(h, w), mode)     the median of each pixel's h x w window (spatial smoothing)
    BitDepth(bits)                      round to 2^bits grey levels (colour-depth reduction)

Xu et al. squeeze MNIST with a 2 x 2 median and 1-bit depth. Wang & Zhang's "feature squeezing"
ran ``scipy.ndimage.median_filter`` with a 1 x 2 window along the width (``MedianFilter((1, 2))``,
which is out[i, j] = max(x[i, j-1], x[i, j]): see ``MedianFilter``).
"""

from nnscratch.backend import get_array_module
from nnscratch.checks import check_choice, check_integer
from nnscratch.defenses.padding import MODES, along_rows_and_columns, padding_matrix
from nnscratch.defenses.preprocessing import Transform, identity_pullback


class MedianFilter(Transform):
    """x_out[n, c, i, j] = the median of the h x w window of x[n, c] at (i, j), per channel:
    exactly ``scipy.ndimage.median_filter(x, size=(1, 1, h, w), mode=mode)``. x: (N, C, H, W).

    scipy's rules, which we follow for odd and even sizes alike: along an axis of window size k
    the window at i covers i - k//2 .. i - k//2 + k - 1 (for even k one more pixel before i than
    after), and the "median" of the m = h w values is the one of rank m // 2 in increasing order
    (from 0): the middle one for odd m, the upper of the two middle ones for even m. So a 1 x 2
    window gives out[i, j] = max(x[i, j-1], x[i, j]), and the 2 x 2 window of Xu et al. the
    third smallest of x[i-1:i+1, j-1:j+1]. Pixels outside the image come from ``mode``
    (``padding.MODES``; "reflect", scipy's default, repeats the border pixel).

    The median is x's value at the pixel it selects, so its derivative sends each output's
    gradient to that pixel (through the padding: a border copy's gradient goes to the pixel it
    copies). That is the true derivative wherever the window's values are distinct
    (``exact = True``); at ties (where the median is not differentiable) one of the tied pixels
    gets it. ``BPDA(MedianFilter(...))`` has the identity as its pullback instead (Athalye et
    al. 2018), and ``exact = False``.
    """

    def __init__(self, size=(2, 2), mode="reflect"):
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise TypeError(f"MedianFilter: size must be a pair (h, w), got {size!r}")
        self.size = tuple(check_integer(k, "MedianFilter: size") for k in size)
        self.mode = check_choice(mode, "MedianFilter: mode", MODES)

    def apply(self, x, rng):
        xp = get_array_module(x)
        (h, w), (height, width) = self.size, x.shape[2:]
        if h > height or w > width:
            raise ValueError(f"MedianFilter: the window {self.size} is larger than the images "
                             f"({height}, {width})")
        p_h, p_w = (xp.asarray(padding_matrix(n, k // 2, k - 1 - k // 2, self.mode), dtype=x.dtype)
                    for n, k in ((height, h), (width, w)))
        padded = along_rows_and_columns(p_h, x, p_w)          # (N, C, H + h - 1, W + w - 1)
        offsets = [(a, b) for a in range(h) for b in range(w)]
        windows = xp.stack([padded[:, :, a:a + height, b:b + width] for a, b in offsets],
                           axis=-1)                                      # (N, C, H, W, h w)
        rank = h * w // 2
        chosen = xp.argsort(windows, axis=-1)[..., rank:rank + 1]        # (N, C, H, W, 1)
        x_out = xp.take_along_axis(windows, chosen, axis=-1)[..., 0]

        def pullback(g):
            g_padded = xp.zeros(padded.shape, dtype=g.dtype)
            for k, (a, b) in enumerate(offsets):   # each output's g to the offset it chose
                g_padded[:, :, a:a + height, b:b + width] += g * (chosen[..., 0] == k)
            return along_rows_and_columns(p_h.T, g_padded, p_w.T)       # fold the border back

        return x_out, pullback


class BitDepth(Transform):
    """x_out = round(x (2^bits - 1)) / (2^bits - 1): 2^bits evenly spaced grey levels in [0, 1]
    (Xu et al.'s bit-depth reduction; ``bits=1`` maps x to 0 or 1). Ties round half to even, as
    ``np.rint`` in Xu et al.'s code does: with 1 bit, 0.5 goes to 0. Not clipped (images in
    [0, 1] stay there). The derivative is zero almost everywhere, so the pullback is the
    identity (BPDA): ``exact = False``. bits: 1 .. 16.
    """

    exact = False

    def __init__(self, bits):
        self.bits = check_integer(bits, "BitDepth: bits")
        if self.bits > 16:
            raise ValueError(f"BitDepth: bits must be at most 16, got {bits!r}")

    def apply(self, x, rng):
        xp = get_array_module(x)
        levels = x.dtype.type(2 ** self.bits - 1)
        return xp.round(x * levels) / levels, identity_pullback
