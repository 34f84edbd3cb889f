"""Spatial attack: rotate and translate the image until the model errs (Engstrom, Tran, Tsipras,
Schmidt & Madry 2017/2019, "Exploring the Landscape of Spatial Robustness", arXiv:1712.02779;
used by Wang & Zhang as the "spatial grid attack"). Its objective, in Wang & Zhang's words::

    max over (du, dv, theta) of  L(T(x; du, dv, theta), y)

The transform T is ``warps.warp`` (rotation about the centre, then translation; bilinear, zero
outside the image; conventions in ``warps.py``). Nothing but the attack's transform changes the
image: x_adv = attack.apply(x, info["angle"], info["shift"]) exactly, in [0, 1] already (a
convex combination of pixels and zeros). The perturbation is not norm-bounded: the norms in the
result are large, a measure of the change rather than a budget.

Wang & Zhang's protocol, from the code they ran (Engstrom et al.'s grid attack as adapted to
MNIST by Brown et al. 2018, "Unrestricted Adversarial Examples", arXiv:1809.08352)::

    SpatialGrid(max_rotation=10, max_translation=10, rotations=11, translations=5,
                border=2, mass_tolerance=0.1)

- the grid: dx, dy in {-10, -5, 0, 5, 10} pixels, angles {-10, -8, ..., 10} degrees, 275
  transforms (whole-pixel shifts: ``warps.py`` on why one warp is that code's two resamplings);
- the shrink: that code resizes each 28x28 image to 24x24 (bilinear, ``warps.resize_bilinear``
  for its convention), pads it with 4 black pixels to 32x32, rotates and translates that, and
  keeps the centred 28x28 (2 pixels off each side). The crop's centre is the 32x32 image's, the
  2 pixels dropped per side are black before the transform and read as zero by it, so this is
  the warp at 28x28 of the 24x24 image in a 2-pixel black border: ``warps.framed(x, 2)``, what
  ``border=2`` does (that code's "black_border_size" 4 is twice ours);
- validity: a transform is valid when it keeps the absolute pixel mass within 10%,
  |sum |x_t| - sum |x_0|| < 0.1 sum |x_0| (``keeps_mass``), x_0 being the identity of the
  protocol (after the shrink: the framed image) and x_t the transformed one: a digit pushed
  partly out of the frame loses mass and is invalid. An all-black image has no valid transform.
- the choice: the misclassified valid transform of highest loss, else the valid one of
  highest loss (the rule that code states in its comment), else (nothing valid) the identity.
  As written, that code subtracts 1e9 from the loss of the valid transforms rather than the
  invalid ones, so it keeps the first misclassified valid transform in its order (dx, dy,
  angle; the angle fastest), and where there is none, the invalid transform of highest loss if
  one has a loss above 0, else the original, unshrunk image. We follow the stated rule, and
  give the code's as ``choice="as_run"`` (with the framed identity, not the unshrunk image,
  in its last case), since that is what made Wang & Zhang's spatial sets.
"""

import numpy as np

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.attacks.warps import framed, warp, warp_gradient
from nnscratch.checks import check_choice, check_integer, check_real, check_seed

# Transformed images per model call in the grid and random modes (the model batches further).
CHUNK = 4096


def mass(x):
    """sum |x| per image of x (N, C, H, W): (N,) host float64."""
    return to_numpy(abs(x).reshape(len(x), -1).sum(axis=1, dtype=np.float64))


def keeps_mass(x, x_t, tolerance):
    """(N,) host bool: whether x_t (N, C, H, W), a transform of x, is valid, its absolute pixel
    mass within ``tolerance`` of x's: |sum |x_t| - sum |x|| < tolerance * sum |x| (Brown et
    al.'s test; strict, so a transform of an all-black x is never valid)."""
    before = mass(x)
    return np.abs(mass(x_t) - before) < tolerance * before


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
    Wang & Zhang's protocol (module docstring) adds two options, off by default:
    - ``border`` (pixels): every image is first shrunk by ``border`` pixels per side into a
      black border (``warps.framed``), and the transforms apply to that; any mode;
    - ``mass_tolerance``: only the transforms that keep the absolute pixel mass of the shrunk
      image within that fraction (``keeps_mass``) are valid; grid and random modes.
    Choice in grid and random modes (``choice="stated"``): among the valid transforms that are
    misclassified, the one with the highest cross-entropy loss; if none is, the valid one with
    the highest loss (first in order on ties); if none is valid, the identity. Success: some
    valid transform evaluated is misclassified. Without a mass_tolerance every transform is
    valid. ``choice="as_run"`` (grid mode, with a mass_tolerance): the choice of Brown et al.'s
    code as it runs (module docstring), where the chosen transform may be invalid; success:
    the chosen transform is misclassified; "valid" still says whether any transform was.

    Queries per image (``Oracle``'s convention: one per image per model call): grid,
    rotations * translations**2 predictions (every transform, valid or not); random,
    ``random_trials``; first_order, ``steps`` gradients plus one final prediction. Plus one when
    y defaults to the model's predictions.
    info: "angle" (N,) degrees and "shift" (N, 2) pixels (dx, dy), host float64, with
    x_adv = attack.apply(x, angle, shift) exactly; "valid" (N,) bool, whether any transform of
    the image was valid (always True in first_order mode); "failure" (N,) "", "zero gradient"
    (first_order, the input gradient was zero at the first step), "no valid transform" or
    "no adversarial transform".
    """

    can_target = False

    def __init__(self, max_rotation=30, max_translation=3, rotations=31, translations=5,
                 mode="grid", random_trials=10, steps=10, seed=0, border=None,
                 mass_tolerance=None, choice="stated"):
        self.max_rotation = check_real(max_rotation, "max_rotation")
        self.max_translation = check_real(max_translation, "max_translation")
        self.rotations = check_integer(rotations, "rotations")
        self.translations = check_integer(translations, "translations")
        self.mode = check_choice(mode, "mode", ("grid", "random", "first_order"))
        self.random_trials = check_integer(random_trials, "random_trials")
        self.steps = check_integer(steps, "steps", minimum=0)
        self.seed = check_seed(seed)
        self.border = None if border is None else check_integer(border, "border")
        self.mass_tolerance = (None if mass_tolerance is None else
                               check_real(mass_tolerance, "mass_tolerance", positive=True))
        if self.mass_tolerance is not None and mode == "first_order":
            raise ValueError("mass_tolerance applies to the grid and random modes, not to "
                             "first_order")
        self.choice = check_choice(choice, "choice", ("stated", "as_run"))
        if self.choice == "as_run" and (mode != "grid" or self.mass_tolerance is None):
            raise ValueError("choice='as_run' is Brown et al.'s code's choice in the grid mode "
                             "with a mass_tolerance")

    def prepared(self, x):
        """x (N, C, H, W) as the transforms see it: framed(x, border), or x without a border."""
        if self.border is None:
            return x
        height, width = x.shape[2:]
        if 2 * self.border >= min(height, width):
            raise ValueError(f"border must leave some of the {height}x{width} images (2 * border "
                             f"below {min(height, width)}), got {self.border}")
        return framed(x, self.border)

    def apply(self, x, angle, shift):
        """The attack's transform of x (N, C, H, W) at angle (N,) degrees and shift (N, 2)
        pixels: warp(prepared(x), angle, shift); x_adv = apply(x, info["angle"], info["shift"])."""
        return warp(self.prepared(x), angle, shift)

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
        x = self.prepared(x)
        if self.mode == "first_order":
            return self.first_order(oracle, x)
        xp = get_array_module(x)
        n = len(x)
        angles, shifts = self.transforms(n)
        trials = angles.shape[1]
        per_call = max(1, CHUNK // trials)
        x_adv, success = xp.empty_like(x), np.zeros(n, dtype=bool)
        any_valid, pick = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
        for start in range(0, n, per_call):
            stop = min(n, start + per_call)
            k = stop - start
            repeated = xp.repeat(x[start:stop], trials, axis=0)
            batch = warp(repeated, angles[start:stop].ravel(), shifts[start:stop].reshape(-1, 2))
            valid = (np.ones((k, trials), dtype=bool) if self.mass_tolerance is None else
                     keeps_mass(repeated, batch, self.mass_tolerance).reshape(k, trials))
            owners = np.repeat(np.arange(start, stop), trials)           # trials per image
            proba = to_numpy(oracle.probabilities(batch, owners)).reshape(k, trials, -1)
            labels = to_numpy(oracle.y[start:stop])
            true = np.take_along_axis(proba, labels[:, None, None], axis=2)[..., 0]
            loss = -np.log(np.maximum(true.astype(np.float64), np.finfo(np.float64).tiny))
            misclassified = proba.argmax(axis=2) != labels[:, None]
            choose = self.choose_as_run if self.choice == "as_run" else self.choose_stated
            pick[start:stop] = choose(loss, valid, misclassified, angles[0], shifts[0])
            picked = (np.arange(k), pick[start:stop])
            success[start:stop] = misclassified[picked] & (valid[picked] |
                                                           (self.choice == "as_run"))
            any_valid[start:stop] = valid.any(axis=1)
            chosen = xp.asarray(np.arange(k) * trials + pick[start:stop])
            x_adv[start:stop] = batch[chosen]
        every = np.arange(n)
        angle, shift = angles[every, pick], shifts[every, pick]
        if self.choice == "stated":
            angle[~any_valid], shift[~any_valid] = 0, 0      # nothing valid: the identity,
            nothing_valid = xp.asarray(np.flatnonzero(~any_valid))
            x_adv[nothing_valid] = x[nothing_valid]           # which warp leaves exactly as is
        failure = failure_reasons(success, np.zeros(n, dtype=bool), "no adversarial transform")
        info = {"angle": angle, "shift": shift, "valid": any_valid,
                "failure": np.where(any_valid, failure, "no valid transform")}
        return x_adv, xp.asarray(success), info

    @staticmethod
    def choose_stated(loss, valid, misclassified, angles, shifts):
        """(k,) the chosen trial of each image: the misclassified valid one of highest loss,
        else the valid one of highest loss (the first on ties; any trial if none is valid)."""
        loss = np.where(valid, loss, -np.inf)
        adversarial = misclassified & valid
        return np.where(adversarial.any(axis=1), np.where(adversarial, loss, -np.inf).argmax(axis=1),
                        loss.argmax(axis=1))

    @staticmethod
    def choose_as_run(loss, valid, misclassified, angles, shifts):
        """(k,) the chosen trial of each image as Brown et al.'s code runs (module docstring):
        the first misclassified valid trial in the order (dx, dy, angle), the angle fastest;
        else the invalid trial of highest loss, if its loss is above 0; else the identity."""
        order = np.lexsort((angles, shifts[:, 1], shifts[:, 0]))        # the code's order
        adversarial = (misclassified & valid)[:, order]
        first = order[adversarial.argmax(axis=1)]
        invalid_loss = np.where(valid, -np.inf, loss)
        identity = int(np.flatnonzero((angles == 0) & (shifts == 0).all(axis=1))[0])
        fallback = np.where(invalid_loss.max(axis=1) > 0, invalid_loss.argmax(axis=1), identity)
        return np.where(adversarial.any(axis=1), first, fallback)

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
                "valid": np.ones(n, dtype=bool),
                "failure": failure_reasons(success, zero_gradient, "no adversarial transform")}
        return x_adv, success, info
