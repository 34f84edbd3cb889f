"""Adversarial patches (Brown, Mané, Roy, Abadi & Gilmer 2017, "Adversarial Patch"): a square of
pixels the attacker controls entirely, anywhere in the image, nothing else touched.

    x' = (1 - M) * x + M * P

M the size x size mask at a location (its top-left corner), P the patch's pixels in [0, 1].
P is optimised by signed gradient steps of ``step_size``: ascent on the cross-entropy of the
label (untargeted), descent on the target's (targeted). dL/dP is dL/dx' cut out at the mask,
summed over the images that share P. Per image (``universal=False``) every image has its own
patch at its own location; an image stops once it is adversarial. One ``universal`` patch is
shared by all the images, each step at fresh random locations (Brown et al.'s expectation over
placements, here over translations only), so that it works wherever it is put; ``paste`` puts
it on other images.

``location``: "random" (drawn per image from ``seed``, redrawn every step for a universal
patch) or a fixed (row, col). ``loss="reject_aware"`` is for a model with a reject class (its
last logit, as ``RejectingModel`` and ``OpenMaxModel`` have): it minimises Sotgiu et al.'s
f = s_y - max_{l not y, R} s_l, with s_y replaced by the reject score while the image is
rejected (``reject_aware.py``), through ``logit_gradient``, and success is then a wrong class
that is not rejected.

P starts uniform in [0, 1] (seeded), as Brown et al.'s. info: "patch" (N, C, size, size), or
(C, size, size) universal; "location" (N, 2) where each image's patch is at the end;
"failure" (N,). The L0 norm of the result is at most C * size^2. Queries per image, per step
while it runs: one for the gradient (two with ``loss="reject_aware"``: the logits that choose
the classes, then the gradient) and, per image, one for the check that stops it; then one for
the final prediction, and one when y is defaulted.
"""

import numpy as np

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.attacks.criteria import MisclassificationNotRejected
from nnscratch.attacks.reject_aware import best_other
from nnscratch.backend import get_array_module, new_rng, to_numpy
from nnscratch.checks import check_choice, check_flag, check_integer, check_real, check_seed


def paste(x, patch, locations):
    """x (N, C, H, W) with ``patch`` ((N, C, s, s), or (C, s, s) for all) at ``locations``
    (N, 2) (top-left rows and columns); a new array."""
    out = x.copy()
    s = patch.shape[-1]
    for i, (row, col) in enumerate(locations.tolist()):
        out[i, :, row:row + s, col:col + s] = patch[i] if patch.ndim == 4 else patch
    return out


def cut(grad, locations, s):
    """(N, C, s, s): each image's gradient at its patch."""
    return get_array_module(grad).stack([grad[i, :, row:row + s, col:col + s]
                                         for i, (row, col) in enumerate(locations.tolist())])


class AdversarialPatch(Attack):
    """A square patch of ``size`` pixels, optimised for ``steps`` signed steps (module
    docstring)."""

    def __init__(self, size, location="random", targeted=False, universal=False, steps=100,
                 step_size=0.05, loss="ce", seed=0):
        self.size = check_integer(size, "size")
        if location != "random":
            if not (isinstance(location, (tuple, list)) and len(location) == 2):
                raise ValueError(f"location must be 'random' or (row, col), got {location!r}")
            location = [check_integer(v, "location", minimum=0) for v in location]   # JSON's form
        self.location = location
        self.targeted = check_flag(targeted, "targeted")
        self.universal = check_flag(universal, "universal")
        self.steps = check_integer(steps, "steps", minimum=0)
        self.step_size = check_real(step_size, "step_size", positive=True)
        self.loss = check_choice(loss, "loss", ("ce", "reject_aware"))
        if self.loss == "reject_aware" and self.targeted:
            raise ValueError("loss='reject_aware' is untargeted: any wrong class not rejected")
        self.seed = check_seed(seed)

    def success_criterion(self, y, target):
        if self.loss == "reject_aware":
            return MisclassificationNotRejected(y)
        return super().success_criterion(y, target)

    def locations(self, rng, n, height, width):
        """(n, 2) top-left corners: the fixed one, or drawn uniformly where the patch fits."""
        if self.location != "random":
            return np.tile(self.location, (n, 1))
        return np.stack([rng.integers(0, height - self.size + 1, n),
                         rng.integers(0, width - self.size + 1, n)], axis=1)

    def ascent(self, oracle, x_patched, idx):
        """The gradient to ascend at the patched images (like them)."""
        if self.loss == "ce":
            return oracle.gradient(x_patched, idx)
        xp = get_array_module(x_patched)
        z = oracle.logits(x_patched, idx)
        rows, reject = xp.arange(len(z)), z.shape[1] - 1
        y = oracle.y[idx]
        other, _ = best_other(z[:, :reject], y)              # the best wrong known class
        w = xp.zeros_like(z)
        rejected = z.argmax(axis=1) == reject
        w[rows, y] = xp.where(rejected, 0, 1).astype(z.dtype)     # s_R held constant
        w[rows, other] -= 1
        return -oracle.logit_gradient(x_patched, w, idx)[1]      # descend f

    def run(self, oracle, x):
        xp = get_array_module(x)
        n, c, height, width = x.shape
        if self.size > min(height, width):
            raise ValueError(f"a patch of {self.size} pixels does not fit {height}x{width} "
                             "images")
        if self.location != "random" and (self.location[0] + self.size > height
                                          or self.location[1] + self.size > width):
            raise ValueError(f"a patch of {self.size} at {self.location} leaves the "
                             f"{height}x{width} image")
        rng = new_rng(self.seed)
        shape = (c, self.size, self.size) if self.universal else (n, c, self.size, self.size)
        patch = xp.asarray(rng.random(shape).astype(x.dtype))
        places = self.locations(rng, n, height, width)
        step = x.dtype.type(self.step_size)
        running = xp.arange(n)                                   # the images still running
        moved = xp.zeros(n, dtype=bool)
        for _ in range(self.steps):
            if self.universal:
                places = self.locations(rng, n, height, width)
            elif not running.size:
                break
            at = places[to_numpy(running)]
            own = patch if self.universal else patch[running]
            g = cut(self.ascent(oracle, paste(x[running], own, at), running), at, self.size)
            moved[running] |= g.reshape(len(running), -1).any(axis=1)
            if self.universal:
                patch = xp.clip(patch + step * xp.sign(g.sum(axis=0)), 0, 1)
            else:
                patch[running] = xp.clip(own + step * xp.sign(g), 0, 1)
                done = oracle.is_adversarial(paste(x[running], patch[running], at), running)
                running = running[~done]
        if self.universal:
            places = self.locations(new_rng(self.seed + 1), n, height, width)
        x_adv = paste(x, patch, places)
        success = oracle.is_adversarial(x_adv)
        return x_adv, success, {"patch": patch, "location": places,
                                "failure": failure_reasons(success, ~moved, "not adversarial")}
