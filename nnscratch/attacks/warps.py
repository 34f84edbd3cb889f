"""The image transforms of the spatial attack (``spatial.py``): a rotation and translation
(``warp``) with its derivative with respect to its parameters (``warp_gradient``), and the
shrink into a black border (``framed``) of Wang & Zhang's protocol. All in NumPy on x's array
module (so on CuPy too).

``warp`` works by inverse mapping and bilinear sampling, zero outside the image (Engstrom et
al.'s padding). Conventions, with the image shown row 0 at the top:
- ``angle`` theta in degrees, positive = counter-clockwise on screen, about the image centre
  ((H - 1) / 2, (W - 1) / 2): a rotation by 90 degrees of a square image is ``np.rot90``;
- ``shift`` (dx, dy) in pixels, dx to the right (columns), dy down (rows), applied after the
  rotation.
Output pixel (row i, column j) samples the input at
    (u, v) = (j - cx - dx, i - cy - dy);  column = u cos(t) - v sin(t) + cx,
                                         row    = u sin(t) + v cos(t) + cy.
These are the conventions of TensorFlow's ``tf.contrib.image.rotate`` followed by
``tf.contrib.image.transform`` with the translation (dx, dy), as the code of Brown et al. 2018
("Unrestricted Adversarial Examples", arXiv:1809.08352), which Wang & Zhang ran, applies them;
that code resamples twice (rotate, then translate), one warp resamples once: the same image
when the shift is a whole number of pixels (the second resampling then only moves pixels).
"""

import math

import numpy as np

from nnscratch.backend import get_array_module, to_numpy


def as_params(x, angle, shift):
    """Host float64 angles (N,) and shifts (N, 2) from scalars, sequences or arrays."""
    angle = np.broadcast_to(np.asarray(to_numpy(angle), dtype=np.float64), (len(x),))
    shift = np.broadcast_to(np.asarray(to_numpy(shift), dtype=np.float64), (len(x), 2))
    return angle, shift


def sampling_grid(x, angle, shift):
    """Where each output pixel samples the input: rows, columns (N, H, W) in x's dtype, and
    u, v, cos, sin (the pieces their derivatives need)."""
    xp = get_array_module(x)
    angle, shift = as_params(x, angle, shift)
    height, width = x.shape[2:]
    radians = np.deg2rad(angle)
    cos = xp.asarray(np.cos(radians).astype(x.dtype))[:, None, None]
    sin = xp.asarray(np.sin(radians).astype(x.dtype))[:, None, None]
    dx = xp.asarray(shift[:, 0].astype(x.dtype))[:, None, None]
    dy = xp.asarray(shift[:, 1].astype(x.dtype))[:, None, None]
    cy, cx = x.dtype.type((height - 1) / 2), x.dtype.type((width - 1) / 2)
    u = xp.arange(width, dtype=x.dtype)[None, None, :] - cx - dx          # (N, 1, W)
    v = xp.arange(height, dtype=x.dtype)[None, :, None] - cy - dy         # (N, H, 1)
    columns = u * cos - v * sin + cx                                      # (N, H, W)
    rows = u * sin + v * cos + cy
    return rows, columns, u, v, cos, sin


def corners(x, rows, columns):
    """The four neighbours I00, I01, I10, I11 (N, C, H, W) of each sampling point (row r0 or
    r0 + 1, column c0 or c0 + 1), zero outside the image, and the fractions fr, fc (N, 1, H, W).
    Zero padding: indices are clipped into [-1, H] x [-1, W] of the image padded by one zero."""
    xp = get_array_module(x)
    n, channels, height, width = x.shape
    padded = xp.zeros((n, channels, height + 2, width + 2), dtype=x.dtype)
    padded[:, :, 1:-1, 1:-1] = x
    flat = padded.reshape(n, channels, -1)
    r0, c0 = xp.floor(rows), xp.floor(columns)
    fr, fc = (rows - r0)[:, None], (columns - c0)[:, None]
    r0, c0 = r0.astype(xp.int64), c0.astype(xp.int64)
    images = xp.arange(n)[:, None, None]
    every_channel = xp.arange(channels)[None, :, None]

    def at(r, c):
        index = (xp.clip(r, -1, height) + 1) * (width + 2) + xp.clip(c, -1, width) + 1
        return flat[images, every_channel, index.reshape(n, 1, -1)].reshape(x.shape)

    return at(r0, c0), at(r0, c0 + 1), at(r0 + 1, c0), at(r0 + 1, c0 + 1), fr, fc


def warp(x, angle, shift):
    """Rotate each image of x (N, C, H, W) by angle[n] degrees about its centre and translate it
    by shift[n] = (dx, dy) pixels (conventions in the module docstring); bilinear, zero outside.
    angle: (N,) or a scalar, shift: (N, 2) or a pair. Returns (N, C, H, W), x's dtype."""
    rows, columns, *_ = sampling_grid(x, angle, shift)
    i00, i01, i10, i11, fr, fc = corners(x, rows, columns)
    top = i00 + fc * (i01 - i00)
    bottom = i10 + fc * (i11 - i10)
    return top + fr * (bottom - top)


def warp_gradient(x, angle, shift, grad_out):
    """d(sum grad_out * warp(x, angle, shift)) / d(angle, dx, dy): (N, 3) host float64, the
    angle's component per degree. grad_out is like x (for an attack, dL/d warp(x)).

    Chain rule through the sampling coordinates (r, c) of each output pixel:
        d out/dr = (1 - fc)(I10 - I00) + fc (I11 - I01)
        d out/dc = (1 - fr)(I01 - I00) + fr (I11 - I10)
    (one-sided where r or c is a whole number: the bilinear surface has a kink there), and of
    the coordinates, from c = u cos - v sin + cx, r = u sin + v cos + cy, u = j - cx - dx,
    v = i - cy - dy:
        dc/dt = -u sin - v cos = -(r - cy),  dr/dt = u cos - v sin = c - cx   (t in radians)
        dc/ddx = -cos, dr/ddx = -sin;  dc/ddy = sin, dr/ddy = -cos.
    """
    rows, columns, u, v, cos, sin = sampling_grid(x, angle, shift)
    i00, i01, i10, i11, fr, fc = corners(x, rows, columns)
    # summed over channels: the upstream gradient times d out/dr and d out/dc, (N, H, W)
    g_rows = (grad_out * ((1 - fc) * (i10 - i00) + fc * (i11 - i01))).sum(axis=1)
    g_columns = (grad_out * ((1 - fr) * (i01 - i00) + fr * (i11 - i10))).sum(axis=1)
    d_radians = g_columns * (-u * sin - v * cos) + g_rows * (u * cos - v * sin)
    d_dx = g_columns * -cos + g_rows * -sin
    d_dy = g_columns * sin + g_rows * -cos
    parts = [d.reshape(len(x), -1).sum(axis=1) for d in (d_radians, d_dx, d_dy)]
    grad = np.stack([to_numpy(p).astype(np.float64) for p in parts], axis=1)
    grad[:, 0] *= math.pi / 180                        # per degree
    return grad


def resize_weights(x, size_in, size_out):
    """For one axis: the lower and upper input index (size_out,) on x's device and the fraction
    of the upper one (size_out,) in x's dtype, output index o sampling the input at o * in / out
    (TensorFlow 1's legacy convention, see ``resize_bilinear``)."""
    xp = get_array_module(x)
    position = np.arange(size_out) * size_in / size_out              # exact where o * in / out is
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)                          # the last row repeated
    return xp.asarray(low), xp.asarray(high), xp.asarray((position - low).astype(x.dtype))


def resize_bilinear(x, height, width):
    """x (N, C, H, W) resized to (N, C, height, width) by bilinear interpolation, no
    antialiasing, in the convention of TensorFlow 1's ``tf.image.resize_images`` (bilinear,
    align_corners=False, from before half_pixel_centers existed), which Brown et al.'s code
    used: output row o samples input row o * H / height (pixel corners aligned at the top left,
    not PyTorch's half-pixel centres), interpolating rows floor(.) and min(floor(.) + 1, H - 1);
    columns likewise, interpolated first (as TensorFlow does). Returns x's dtype."""
    low, high, fraction = resize_weights(x, x.shape[3], width)
    x = x[:, :, :, low] + fraction * (x[:, :, :, high] - x[:, :, :, low])
    low, high, fraction = resize_weights(x, x.shape[2], height)
    return x[:, :, low] + fraction[:, None] * (x[:, :, high] - x[:, :, low])


def framed(x, border):
    """Each image of x (N, C, H, W) shrunk to (H - 2 border, W - 2 border) by
    ``resize_bilinear`` and centred in a black border of ``border`` pixels: (N, C, H, W)."""
    xp = get_array_module(x)
    height, width = x.shape[2:]
    out = xp.zeros_like(x)
    out[:, :, border:height - border, border:width - border] = resize_bilinear(
        x, height - 2 * border, width - 2 * border)
    return out
