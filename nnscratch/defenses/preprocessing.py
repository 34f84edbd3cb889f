"""Image preprocessing as a defence: Günther, Rozsa & Boult (2017), section 2.2 and Table 2.

The paper shifts each image by one pixel in a random direction (the row or column pushed out
comes back on the other side), blurs it with a Gaussian of one pixel standard deviation, adds
normal noise of one grey level, or does all three (shift, then blur, then noise); "after
processing, all pixels are converted to integral values in [0, 255]". Here each step is a
transform and rounding is one of them, so the paper's columns are compositions::

    Compose(GaussianNoise(), Round())                      Noise
    Compose(Blur(), Round())                               Blur
    Compose(Shift(), Round())                              Shift
    Compose(Shift(), Blur(), GaussianNoise(), Round())     Combined   (``table2_transforms``)

Every transform is a vector-Jacobian product, as the model is::

    x_out, pullback = t.forward(x, rng=None)     x, x_out: (N, C, H, W), same dtype
    pullback(g) = d(sum g * x_out)/dx            g shaped like x_out
    t(x, rng=None) -> x_out                      t.vjp(x, g, rng=None) -> like x

``t.exact`` is True when the pullback is the true derivative (noise, blur, shift: all linear
in x, given the random draw) and False when it is the identity standing in for a derivative
that is zero almost everywhere (rounding: BPDA, Athalye et al. 2018). ``rng`` is an integer
seed, a random Generator (NumPy's, or CuPy's for CuPy input), or None for fresh entropy; the
same seed gives the same draw, so ``t(x, rng=s)`` and ``t.vjp(x, g, rng=s)`` refer to the same
transformed image. Random numbers are drawn in float64 and cast, so float32 and float64 inputs
get the same draw. Images must be in [0, 1] (``forward``, ``t(x)`` and ``t.vjp`` refuse others,
as attacks do); only ``Round`` clips.
"""

import numbers

from nnscratch.backend import get_array_module, new_rng
from nnscratch.layers import GaussianBlur
from nnscratch.checks import check_choice, check_integer, check_real
from nnscratch.defenses.padding import MODES, along_rows_and_columns, padding_matrix
from nnscratch.model.interface import check_unit_images

GREY_LEVELS = 255                               # images hold k / 255, k = 0 .. 255


def as_generator(rng, xp):
    """A random Generator from ``rng``: None (fresh entropy), a seed, or a Generator (kept)."""
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return new_rng(rng, xp)
    if hasattr(rng, "standard_normal") and hasattr(rng, "random"):
        return rng
    raise TypeError(f"rng must be None, an integer seed or a random Generator, got {rng!r}")


class Transform:
    """Base class. A transform implements ``apply(x, rng)`` on one checked batch with a
    Generator; ``forward``, ``__call__`` and ``vjp`` check their inputs (images in [0, 1])
    and derive from it."""

    exact = True

    def apply(self, x, rng):
        """(x_out, pullback) for images x (N, C, H, W) and a random Generator ``rng``."""
        raise NotImplementedError

    def forward(self, x, rng=None):
        """(x_out, pullback): the transformed images and d(sum g * x_out)/dx as a function of g."""
        xp = check_unit_images(x)
        return self.apply(x, as_generator(rng, xp))

    def __call__(self, x, rng=None):
        return self.forward(x, rng)[0]

    def vjp(self, x, g, rng=None):
        """d(sum g * t(x))/dx for the draw that ``rng`` gives (like x)."""
        x_out, pullback = self.forward(x, rng)
        if not hasattr(g, "shape") or tuple(g.shape) != tuple(x_out.shape):
            raise ValueError(f"g must have the shape of the transformed images "
                             f"{tuple(x_out.shape)}, got {getattr(g, 'shape', type(g).__name__)}")
        return pullback(g.astype(x.dtype, copy=False))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def identity_pullback(g):
    return g.copy()                # a copy: whoever receives it may change it in place


class GaussianNoise(Transform):
    """x_out = x + sigma * n, n ~ N(0, 1) per pixel; sigma = 1/255 is one grey level.

    Not clipped (Round, which follows it in the paper, clips). d x_out/dx = I for a fixed draw.
    """

    def __init__(self, sigma=1 / GREY_LEVELS):
        self.sigma = check_real(sigma, "GaussianNoise: sigma")

    def apply(self, x, rng):
        xp = get_array_module(x)
        noise = xp.asarray(rng.standard_normal(x.shape)).astype(x.dtype)       # (N, C, H, W)
        return x + x.dtype.type(self.sigma) * noise, identity_pullback


class Blur(Transform):
    """x_out = G * x per channel, G the separable Gaussian of standard deviation ``sigma``
    pixels (the paper: one pixel).

    The paper gives neither the kernel size nor the border handling. We take the taps of
    ``nnscratch.layers.GaussianBlur`` (normalised to sum 1) of radius ceil(3 sigma) (3 for
    sigma = 1, a 7 x 7 kernel) unless ``radius`` is given, or scipy's int(truncate * sigma + 0.5)
    if ``truncate`` is, and zero padding (mode "constant": black outside the image, MNIST's
    background). The operator is then a symmetric matrix, so the pullback is the same blur
    applied to g.

    The other modes of ``padding.MODES`` pad as scipy.ndimage does ("reflect" is Wang & Zhang's
    blur: sigma 2, truncate 4), so ``Blur(s, mode=m, truncate=t)(x)`` equals
    ``scipy.ndimage.gaussian_filter(x, (0, 0, s, s), mode=m, truncate=t)``. Along an axis of
    length n the blur is then the (n, n) matrix A = T P: P (n + 2r, n) the padding and T the taps
    on the padded grid, T[i, i + t] = g[t]. x_out = A_h x A_w^T; the pullback A_h^T g A_w is the
    blur's adjoint on the padded grid, then the padding's (border gradients folded back onto the
    pixels they copy). For "reflect" A happens to be symmetric, A[i, j] = sum_k g[j - i + 2nk]
    + g[-1 - i - j + 2nk] (g even, zero beyond the radius); for "mirror" and "nearest" it is
    not. A^T serves every mode.
    """

    def __init__(self, sigma=1.0, radius=None, mode="constant", truncate=None):
        sigma = check_real(sigma, "Blur: sigma", positive=True)
        if truncate is not None:
            if radius is not None:
                raise ValueError("Blur: give radius or truncate, not both")
            radius = int(check_real(truncate, "Blur: truncate", positive=True) * sigma + 0.5)
        self._blur = GaussianBlur(sigma, radius)
        self.sigma, self.radius = self._blur.sigma, self._blur.radius
        self.mode = check_choice(mode, "Blur: mode", MODES)

    def apply(self, x, rng):
        if self.mode == "constant":
            return self._blur.blur(x), self._blur.blur
        xp = get_array_module(x)
        a_h, a_w = (xp.asarray(self.matrix(n), dtype=x.dtype) for n in x.shape[2:])
        return (along_rows_and_columns(a_h, x, a_w),
                lambda g: along_rows_and_columns(a_h.T, g, a_w.T))

    def matrix(self, n):
        """A = T P (n, n), float64: the blur along an axis of length n, padded in ``mode``."""
        r = self.radius
        padding = padding_matrix(n, r, r, self.mode)                            # (n + 2r, n)
        return sum(tap * padding[t:t + n] for t, tap in enumerate(self._blur.taps))


# (axis, step) of np.roll for the four directions: left, right, up, down
DIRECTIONS = ((3, -1), (3, 1), (2, -1), (2, 1))


class Shift(Transform):
    """Each image moved by ``pixels`` in a random direction (left, right, up or down, equally
    likely, drawn per image), with wrap-around: ``np.roll(x_n, ±pixels, axis=W or H)``.

    x_out = P_n x_n, P_n a permutation; the pullback is its inverse, P_n^T g_n = roll back.
    """

    def __init__(self, pixels=1):
        self.pixels = check_integer(pixels, "Shift: pixels")

    def apply(self, x, rng):
        xp = get_array_module(x)
        u = xp.asarray(rng.random(len(x)))                                      # (N,)
        direction = xp.floor(u * 4).reshape(len(x), 1, 1, 1)                   # 0, 1, 2, 3

        def roll(a, sign):
            out = a
            for k, (axis, step) in enumerate(DIRECTIONS):
                out = xp.where(direction == k, xp.roll(a, sign * step * self.pixels, axis), out)
            return out

        return roll(x, 1), lambda g: roll(g, -1)


class Round(Transform):
    """x_out = clip(round(255 x), 0, 255) / 255: integral grey levels (round half to even).

    Its derivative is zero almost everywhere, so the pullback is the identity (BPDA):
    ``exact = False``.
    """

    exact = False

    def apply(self, x, rng):
        xp = get_array_module(x)
        levels = x.dtype.type(GREY_LEVELS)
        return xp.clip(xp.round(x * levels), 0, levels) / levels, identity_pullback


class Compose(Transform):
    """t_k(...t_2(t_1(x))): the transforms in the order given, all drawing from one Generator
    (in that order). The pullback chains theirs in reverse; exact iff every step is."""

    def __init__(self, *transforms):
        if not transforms:
            raise ValueError("Compose needs at least one transform")
        for t in transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"Compose takes Transform objects, got {t!r}")
        self.transforms = transforms
        self.exact = all(t.exact for t in transforms)

    def apply(self, x, rng):
        pullbacks = []
        for t in self.transforms:
            x, pullback = t.apply(x, rng)
            pullbacks.append(pullback)

        def chain(g):
            for pullback in reversed(pullbacks):
                g = pullback(g)
            return g

        return x, chain

    def __repr__(self):
        return f"Compose({', '.join(map(repr, self.transforms))})"


class BPDA(Transform):
    """``transform``'s output with the identity as its pullback (BPDA, Athalye et al. 2018):
    the attack that treats a preprocessing step as if it were not there on the way back,
    whether or not its true derivative exists. ``exact = False``."""

    exact = False

    def __init__(self, transform):
        if not isinstance(transform, Transform):
            raise TypeError(f"BPDA takes a Transform, got {transform!r}")
        self.transform = transform

    def apply(self, x, rng):
        return self.transform.apply(x, rng)[0], identity_pullback


def table2_transforms():
    """The preprocessing columns of Günther et al.'s Table 2, each followed by rounding to
    integral grey levels. ("None" is no transform; "Crops" is ``FiveCropAverage``.)"""
    return {"noise": Compose(GaussianNoise(), Round()),
            "blur": Compose(Blur(), Round()),
            "shift": Compose(Shift(), Round()),
            "combined": Compose(Shift(), Blur(), GaussianNoise(), Round())}

