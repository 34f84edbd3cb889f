"""Fooling images (Nguyen, Yosinski & Clune 2015, "Deep Neural Networks are Easily Fooled"), in
the gradient-ascent form Günther, Rozsa & Boult use: from noise or a pattern, climb the target
class's probability until the network gives it the wanted confidence (their F50, F90, F99).
"""

from nnscratch.backend import get_array_module, new_rng

from nnscratch.attacks.base import Attack, Oracle, failure_reasons
from nnscratch.attacks.criteria import TargetConfidence
from nnscratch.attacks.gradient import step
from nnscratch.attacks.norms import any_nonzero, normalized
from nnscratch.checks import check_choice, check_integer, check_real, check_seed


class FoolingImages(Attack):
    """FoolingImages(target_confidence=0.5, steps=1000, step_size=0.01, start="random", seed=0).

    ``generate(model, x, target=t)``: x (N, C, H, W) float in [0, 1] and t (N,) the classes to
    reach. x gives the shape, dtype and array module; it is also the start when start="x" (a
    pattern or any image). y is ignored: a fooling image belongs to no class. Starts::

        "random":  uniform noise in [0, 1], from ``seed`` (Günther et al.'s Fig. 4)
        "uniform": a uniform grey image, every pixel 0.5
        "x":       the images x themselves (Günther et al.'s Fig. 2 starts from one pattern)

    From the start x_0, per image, gradient ascent on the target's log-probability::

        x_{k+1} = clip(x_k + step_size * g / max|g|, 0, 1),   g = grad_x log softmax(z(x_k))_t

    stopping at the first x_k with softmax(z(x_k))_t >= target_confidence (success) or after
    ``steps`` steps. The objective is the log-probability, as Nguyen et al. (log p = -CE, one
    ``loss_gradient`` call gives p and g together); the linf-normalised step (step_size is the
    largest pixel change per step) and the defaults are ours: Nguyen et al. and Günther et al.
    give neither for MNIST.

    Result: x_adv the fooling images, success (N,) the confidence reached, norms of x_adv - x_0
    (from the start, not from x unless start="x"), target t. Queries per image: one per
    evaluation (probability and gradient in one call): k + 1 for an image that reached the
    confidence after k steps, steps + 1 for one that did not. info: "start" (N, C, H, W) x_0,
    "confidence" (N,) softmax(z(x_adv))_t, "steps" (N,) the steps taken, "failure" ("",
    "zero gradient" where the gradient was exactly zero, "steps exhausted").
    """

    def __init__(self, target_confidence=0.5, steps=1000, step_size=0.01, start="random", *,
                 seed=0):
        self.target_confidence = check_real(target_confidence, "target_confidence",
                                            positive=True, below=1)
        self.steps = check_integer(steps, "steps", minimum=0)
        self.step_size = check_real(step_size, "step_size", positive=True)
        self.start = check_choice(start, "start", ("random", "uniform", "x"))
        self.seed = check_seed(seed)
        self.targeted = True

    def start_images(self, x):
        xp = get_array_module(x)
        if self.start == "x":
            return x.copy()
        if self.start == "uniform":
            return xp.full(x.shape, 0.5, dtype=x.dtype)
        return new_rng(self.seed, xp).random(x.shape).astype(x.dtype, copy=False)

    def generate(self, model, x, y=None, target=None):
        """Fooling images from the starts of x towards ``target`` (see the class docstring).
        Never modifies x; x_adv keeps x's dtype and array module."""
        xp = self.check(x, None, target)                              # y is not used
        n = len(x)
        x_adv = self.start_images(x)
        start = x_adv.copy()
        queries = xp.zeros(n, dtype=xp.int64)
        confident = TargetConfidence(target, self.target_confidence)       # success
        oracle = Oracle(model, None, target, queries, confident)
        confidence = xp.zeros(n, dtype=x.dtype)
        taken = xp.zeros(n, dtype=xp.int64)
        zero = xp.zeros(n, dtype=bool)
        active = xp.arange(n)
        for k in range(self.steps + 1):
            loss, grad_loss = oracle.loss_gradient(x_adv[active], target[active], active)
            g = -grad_loss.astype(x.dtype, copy=False)                # grad log p_t = -grad CE
            p = xp.exp(-loss).astype(x.dtype, copy=False)             # softmax(z)_t
            confidence[active] = p
            moving = any_nonzero(g)
            zero[active] = ~moving
            climbing = ~confident.reached(p, active) & moving
            active, g = active[climbing], g[climbing]
            if k == self.steps or not active.size:
                break
            x_adv[active] = step(x_adv[active], normalized(g, "linf"),
                                 x.dtype.type(self.step_size))
            taken[active] += 1
        success = confident.reached(confidence)
        info = {"start": start, "confidence": confidence, "steps": taken,
                "failure": failure_reasons(success, zero & ~success, "steps exhausted")}
        return self.result(start, x_adv, success, queries, target, info)
