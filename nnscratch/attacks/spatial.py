"""Spatial attack: rotate and translate the image until the model errs (Engstrom, Tran, Tsipras,
Schmidt & Madry 2017/2019, "Exploring the Landscape of Spatial Robustness", arXiv:1712.02779;
used by Wang & Zhang as the "spatial grid attack"). Its objective, in Wang & Zhang's words::

    max over (du, dv, theta) of  L(T(x; du, dv, theta), y)

The transform T (``warp``), written here with NumPy on x's array module (so on CuPy too), by
inverse mapping and bilinear sampling, zero outside the image (the paper's padding). Conventions,
with the image shown row 0 at the top:
- ``angle`` theta in degrees, positive = counter-clockwise on screen, about the image centre
  ((H - 1) / 2, (W - 1) / 2): a rotation by 90 degrees of a square image is ``np.rot90``;
- ``shift`` (dx, dy) in pixels, dx to the right (columns), dy down (rows), applied after the
  rotation.
Output pixel (row i, column j) samples the input at
    (u, v) = (j - cx - dx, i - cy - dy);  column = u cos(t) - v sin(t) + cx,
                                         row    = u sin(t) + v cos(t) + cy.
Nothing but this warp changes the image: x_adv = warp(x, info["angle"], info["shift"]), in
[0, 1] already (a convex combination of pixels and zeros). The perturbation is not norm-bounded:
the norms in the result are large, a measure of the change rather than a budget.
"""

import math

import numpy as np

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.checks import check_choice, check_integer, check_real, check_seed

# Transformed images per model call in the grid and random modes (the model batches further).
CHUNK = 4096


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


def linspace_or_zero(bound, count):
    """``count`` values evenly from -bound to bound; a single value is 0 (no transform)."""
    return np.linspace(-bound, bound, count) if count > 1 else np.zeros(1)


class SpatialGrid(Attack):
    """Rotation and translation attack (Engstrom et al. 2017/2019), untargeted, in three modes.

    Parameters live in the box [-max_rotation, max_rotation] degrees x [-max_translation,
    max_translation]^2 pixels (the paper's 30 degrees and 3 pixels, on 28x28 MNIST / 32x32
    CIFAR: on 8x8 digits 3 pixels is a large move).
    - "grid": every combination of ``rotations`` angles linspace(-30, 30, 31) and ``translations``
      shifts linspace(-3, 3, 5) per axis: 31 x 5 x 5 = 775 transformed images per input.
    - "random": Engstrom's worst-of-k, ``random_trials`` transforms drawn uniformly in the box
      (host generator seeded with ``seed``: the same transforms on every backend).
    - "first_order": ``steps`` signed-gradient ascent steps on (angle, dx, dy) from the identity,
      each of size 2.5 * bound / steps for its parameter (Madry et al.'s rule), projected onto
      the box; the gradient is ``warp_gradient`` of the model's input gradient. The final
      parameters are the result (as PGD's final iterate).
    Choice in grid and random modes: among the transforms that are misclassified, the one with
    the highest cross-entropy loss; if none is, the one with the highest loss (first in order on
    ties). Success: some transform evaluated is misclassified.

    Queries per image (``Oracle``'s convention: one per image per model call): grid,
    rotations * translations**2 predictions; random, ``random_trials``; first_order, ``steps``
    gradients plus one final prediction. Plus one when y defaults to the model's predictions.
    info: "angle" (N,) degrees and "shift" (N, 2) pixels (dx, dy), host float64, with
    x_adv = warp(x, angle, shift) exactly; "failure" (N,) "", "zero gradient" (first_order, the
    input gradient was zero at the first step) or "no adversarial transform".
    """

    can_target = False

    def __init__(self, max_rotation=30, max_translation=3, rotations=31, translations=5,
                 mode="grid", random_trials=10, steps=10, seed=0):
        self.max_rotation = check_real(max_rotation, "max_rotation")
        self.max_translation = check_real(max_translation, "max_translation")
        self.rotations = check_integer(rotations, "rotations")
        self.translations = check_integer(translations, "translations")
        self.mode = check_choice(mode, "mode", ("grid", "random", "first_order"))
        self.random_trials = check_integer(random_trials, "random_trials")
        self.steps = check_integer(steps, "steps", minimum=0)
        self.seed = check_seed(seed)

    def transforms(self, n):
        """(N, T) angles and (N, T, 2) shifts, host, the candidates of each image."""
        if self.mode == "grid":
            angles = linspace_or_zero(self.max_rotation, self.rotations)
            offsets = linspace_or_zero(self.max_translation, self.translations)
            a, dx, dy = (g.ravel() for g in np.meshgrid(angles, offsets, offsets, indexing="ij"))
            return np.tile(a, (n, 1)), np.tile(np.stack([dx, dy], axis=1), (n, 1, 1))
        rng = np.random.default_rng(self.seed)
        angles = rng.uniform(-self.max_rotation, self.max_rotation, (n, self.random_trials))
        shifts = rng.uniform(-self.max_translation, self.max_translation,
                             (n, self.random_trials, 2))
        return angles, shifts

    def run(self, oracle, x):
        if self.mode == "first_order":
            return self.first_order(oracle, x)
        xp = get_array_module(x)
        n = len(x)
        angles, shifts = self.transforms(n)
        trials = angles.shape[1]
        per_call = max(1, CHUNK // trials)
        x_adv, success = xp.empty_like(x), np.zeros(n, dtype=bool)
        pick = np.zeros(n, dtype=np.int64)
        for start in range(0, n, per_call):
            stop = min(n, start + per_call)
            k = stop - start
            batch = warp(xp.repeat(x[start:stop], trials, axis=0),
                         angles[start:stop].ravel(), shifts[start:stop].reshape(-1, 2))
            owners = np.repeat(np.arange(start, stop), trials)           # trials per image
            proba = to_numpy(oracle.probabilities(batch, owners)).reshape(k, trials, -1)
            labels = to_numpy(oracle.y[start:stop])
            true = np.take_along_axis(proba, labels[:, None, None], axis=2)[..., 0]
            loss = -np.log(np.maximum(true.astype(np.float64), np.finfo(np.float64).tiny))
            adversarial = proba.argmax(axis=2) != labels[:, None]
            success[start:stop] = adversarial.any(axis=1)
            pick[start:stop] = np.where(success[start:stop],
                                        np.where(adversarial, loss, -np.inf).argmax(axis=1),
                                        loss.argmax(axis=1))
            chosen = xp.asarray(np.arange(k) * trials + pick[start:stop])
            x_adv[start:stop] = batch[chosen]
        every = np.arange(n)
        info = {"angle": angles[every, pick], "shift": shifts[every, pick],
                "failure": failure_reasons(success, np.zeros(n, dtype=bool),
                                           "no adversarial transform")}
        return x_adv, xp.asarray(success), info

    def first_order(self, oracle, x):
        n = len(x)
        bounds = np.array([self.max_rotation, self.max_translation, self.max_translation])
        sizes = 2.5 * bounds / max(self.steps, 1)
        params = np.zeros((n, 3))                        # (angle, dx, dy), the identity
        zero_gradient = np.zeros(n, dtype=bool)
        for step in range(self.steps):
            warped = warp(x, params[:, 0], params[:, 1:])
            grad_x = oracle.gradient(warped)
            if step == 0:
                zero_gradient = to_numpy((grad_x.reshape(n, -1) == 0).all(axis=1))
            grad = warp_gradient(x, params[:, 0], params[:, 1:], grad_x)
            params = np.clip(params + sizes * np.sign(grad), -bounds, bounds)
        x_adv = warp(x, params[:, 0], params[:, 1:])
        success = oracle.is_adversarial(x_adv)
        info = {"angle": params[:, 0].copy(), "shift": params[:, 1:].copy(),
                "failure": failure_reasons(success, zero_gradient, "no adversarial transform")}
        return x_adv, success, info
