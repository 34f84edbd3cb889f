"""Per-image norms, normalisation and projection: what every gradient attack does to a gradient
and to a perturbation, written once (foolbox 3's ``gradient_descent_base`` keeps the same three
per norm: ``normalize``, ``project``, ``get_random_start``).

All functions take arrays (N, C, H, W), one image per row, and work per image; they take their
array module from their input and keep its dtype.
"""

from nnscratch.backend import get_array_module

# The steepest-ascent direction of each ball (the normalisation an attack in that ball steps
# along): sign(g) for L-inf (Goodfellow et al. 2015; Madry et al. 2018), g / ||g||_2 for L2.
STEEPEST = {"linf": "sign", "l2": "l2"}


def per_image(values):
    """(N, ...) -> (N, D), one row per image, for reductions over each image."""
    return values.reshape(len(values), -1)


def per_image_norm(values, norm):
    """(N, ...) -> (N,) the "linf" (max |v|), "l2" (Euclidean) or "l1" (sum |v|) norm of each
    image."""
    xp = get_array_module(values)
    flat = per_image(values)
    if norm == "linf":
        return abs(flat).max(axis=1)
    return abs(flat).sum(axis=1) if norm == "l1" else xp.sqrt((flat * flat).sum(axis=1))


def any_nonzero(values):
    """(N, ...) -> (N,) bool: the image has a nonzero value."""
    return (per_image(values) != 0).any(axis=1)


def normalized(g, norm):
    """g rescaled per image, g (N, C, H, W) -> like g:

        "sign":  sign(g)          the steepest-ascent direction of the L-inf ball
        "linf":  g / max |g|      unit L-inf length, the direction of g kept (FGV, HotCold)
        "l2":    g / ||g||_2      unit L2 length, the steepest-ascent direction of the L2 ball
        "l1":    g / ||g||_1      unit L1 length (FAB's random starts)

    An image whose g is zero stays zero: its norm is replaced by 1 in the division (an exact
    test, not foolbox's max(||g||, 1e-12): a gradient shorter than 1e-12 is still scaled to
    unit length).
    """
    xp = get_array_module(g)
    if norm == "sign":
        return xp.sign(g)
    size = per_image_norm(g, norm)
    return g / xp.where(size == 0, 1, size).reshape(-1, 1, 1, 1)


def project(x, x_moved, eps, norm):
    """clip_[0,1](x + P_eps(x_moved - x)): the perturbation brought back into the eps-ball of
    ``norm`` ("linf": clipped per pixel; "l2": scaled down to length eps when longer), then the
    pixels into the box. x, x_moved (N, C, H, W); eps a number >= 0.

    The result lies in both sets (clipping to the box only shortens a perturbation that starts
    from an image in the box): the usual stand-in for the projection onto their intersection.
    """
    xp = get_array_module(x)
    eps = x.dtype.type(eps)
    delta = x_moved - x
    if norm == "linf":
        delta = xp.clip(delta, -eps, eps)
    else:
        length = per_image_norm(delta, "l2")
        shrink = xp.where(length > eps, eps / xp.where(length == 0, 1, length), 1)
        delta = delta * shrink.astype(x.dtype, copy=False).reshape(-1, 1, 1, 1)
    return xp.clip(x + delta, 0, 1)
