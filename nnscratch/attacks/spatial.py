"""Spatial attack: rotate and translate the image until the model errs (Engstrom, Tran, Tsipras,
Schmidt & Madry 2017/2019, "Exploring the Landscape of Spatial Robustness", arXiv:1712.02779;
used by Wang & Zhang as the "spatial grid attack"). Its objective, in Wang & Zhang's words::

    max over (du, dv, theta) of  L(T(x; du, dv, theta), y)

The transform T is ``warps.warp`` (rotation about the centre, then translation; bilinear, zero
outside the image; conventions in ``warps.py``). Nothing but this warp changes the image:
x_adv = warp(x, info["angle"], info["shift"]), in [0, 1] already (a convex combination of
pixels and zeros). The perturbation is not norm-bounded: the norms in the result are large, a
measure of the change rather than a budget.
"""

import numpy as np

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.attacks.warps import warp, warp_gradient
from nnscratch.checks import check_choice, check_integer, check_real, check_seed

# Transformed images per model call in the grid and random modes (the model batches further).
CHUNK = 4096


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
