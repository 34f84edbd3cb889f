"""Szegedy et al.'s box-constrained L-BFGS attack ("Intriguing properties of neural networks",
2014): the smallest L2 perturbation that reaches a class, found by minimising distance plus c
times the cross-entropy with scipy's L-BFGS-B, c searched per image.
"""

import numpy as np
import scipy.optimize

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.backend import get_array_module, to_numpy
from nnscratch.checks import check_flag, check_integer, check_real


class LBFGS(Attack):
    """Box-constrained L-BFGS, per image::

        minimise  ||eta||_2^2 + c * CE(x + eta, t)     subject to  x + eta in [0, 1]^D

    CE the softmax cross-entropy, t the target (targeted, the paper's form; Harms et al. target
    class 6). ``targeted=False`` is our untargeted variant, ||eta||^2 - c * CE(x + eta, y): push
    the cross-entropy of the label up (success: predicted != y).

    The minimisation is scipy's L-BFGS-B (``method="L-BFGS-B"``, the bounds as box constraints,
    ``max_iterations`` iterations, memory ``memory`` = 15 as foolbox 2), started at eta = 0, in
    float64 on the host: a host-side search that calls the model with x + eta in x's dtype on
    x's array module (CuPy inputs go to the host and each query back to the device). The
    objective is exact only to the model's precision (float32 for a float32 model).

    ``batch_size`` images are minimised together as one problem, the sum of their objectives
    (each with its own c), as cleverhans' L-BFGS attack does: every function evaluation is then
    one batched model call instead of ``batch_size`` calls of one image, which is what makes
    hundreds of images affordable on a CPU. The problems are independent, so the joint minimum is
    every image's own minimum; but L-BFGS-B's line search, its curvature memory and its stopping
    tests are shared by the images of a batch, so the path there, and the end point reached
    within ``max_iterations`` (the joint problem's iterations), differ from one image alone.
    ``batch_size=1`` (the default) is Szegedy's per-image problem; an image's result then does
    not depend on the other images.

    c is searched per image as foolbox 2 and cleverhans 3 did: c starts at ``initial_const`` and
    doubles after every run that does not end adversarial, until one does; then bisection
    between the largest c that failed (c_lo, 0 at first) and the smallest that succeeded
    (c_hi); ``binary_search_steps`` runs of L-BFGS-B in all (foolbox 2 doubled up to 30 times
    and bisected to an absolute tolerance; a run count is ours, as cleverhans's).
    Kept: the adversarial end point with the smallest L2 norm over all runs (its c in
    info["const"]); an image whose cross-entropy gradient at x is exactly zero is not searched
    (no c moves it: "zero gradient").

    Queries per image: one per function evaluation (a gradient, the first at x), one prediction
    at the end of each run, plus one when y defaults to the model's predictions.
    """

    def __init__(self, targeted=True, initial_const=1e-2, binary_search_steps=10,
                 max_iterations=150, memory=15, batch_size=1):
        self.targeted = check_flag(targeted, "targeted")
        self.initial_const = check_real(initial_const, "initial_const", positive=True)
        self.binary_search_steps = check_integer(binary_search_steps, "binary_search_steps")
        self.max_iterations = check_integer(max_iterations, "max_iterations")
        self.memory = check_integer(memory, "memory")
        self.batch_size = check_integer(batch_size, "batch_size")

    def run(self, oracle, x):
        xp = get_array_module(x)
        labels = to_numpy(oracle.y if oracle.target is None else oracle.target)
        host = to_numpy(x).astype(np.float64)                    # (N, C, H, W)
        best, const = host.copy(), np.full(len(x), np.nan)
        moved = np.zeros(len(x), dtype=bool)
        for start in range(0, len(x), self.batch_size):
            batch = np.arange(start, min(start + self.batch_size, len(x)))
            best[batch], const[batch], moved[batch] = self.search(
                oracle, x, host[batch], labels[batch], batch)
        x_adv = xp.asarray(best.astype(x.dtype))
        success = oracle.is_adversarial(x_adv)
        const = np.where(to_numpy(success), const, np.nan)
        return x_adv, success, {"const": xp.asarray(const),
                                "failure": failure_reasons(success, ~moved, "not adversarial")}

    def search(self, oracle, x, images, labels, batch):
        """(kept images, their c or nan, gradient nonzero), each (n, ...), for the images
        ``batch`` (n,) of x, ``images`` their float64 host copy (n, C, H, W)."""
        xp = get_array_module(x)
        n, shape = len(images), images.shape[1:]
        sign = 1 if self.targeted else -1                         # minimise +-c * CE
        start = images.reshape(n, -1)                             # (n, D)

        def query(flat, rows):          # CE (m,) and its gradient (m, D) at flat (m * D,)
            x_query = xp.asarray(flat.reshape((len(rows),) + shape).astype(x.dtype))
            losses, grad = oracle.loss_gradient(x_query, xp.asarray(labels[rows]),
                                                xp.asarray(batch[rows]))
            return (to_numpy(losses).astype(np.float64),
                    to_numpy(grad).astype(np.float64).reshape(len(rows), -1))

        def objective(flat, rows, c):   # the sum over the rows of ||eta||^2 +- c CE
            ce, grad = query(flat, rows)
            eta = flat.reshape(len(rows), -1) - start[rows]
            value = (eta * eta).sum() + sign * (c * ce).sum()
            return value, (2 * eta + sign * c[:, None] * grad).reshape(-1)

        everyone = np.arange(n)
        moved = query(start.reshape(-1), everyone)[1].any(axis=1)
        rows = np.flatnonzero(moved)
        kept, kept_norm, kept_const = images.copy(), np.full(n, np.inf), np.full(n, np.nan)
        c, c_lo, c_hi = np.full(n, self.initial_const), np.zeros(n), np.full(n, np.inf)
        for _ in range(self.binary_search_steps if rows.size else 0):
            bounds = scipy.optimize.Bounds(np.zeros(rows.size * start.shape[1]),
                                           np.ones(rows.size * start.shape[1]))
            end = scipy.optimize.minimize(
                objective, start[rows].reshape(-1), args=(rows, c[rows]), jac=True,
                method="L-BFGS-B", bounds=bounds,
                options={"maxiter": self.max_iterations, "maxcor": self.memory}).x
            end = np.clip(end, 0, 1).reshape((rows.size,) + shape)
            adversarial = to_numpy(oracle.is_adversarial(
                xp.asarray(end.astype(x.dtype)), xp.asarray(batch[rows]))).astype(bool)
            norm = np.linalg.norm((end.astype(x.dtype) - images[rows].astype(x.dtype))
                                  .reshape(rows.size, -1), axis=1)
            better = adversarial & (norm < kept_norm[rows])
            kept[rows[better]], kept_norm[rows[better]] = end[better], norm[better]
            kept_const[rows[better]] = c[rows[better]]
            c_hi[rows[adversarial]] = c[rows[adversarial]]
            c_lo[rows[~adversarial]] = c[rows[~adversarial]]
            c[rows] = np.where(np.isinf(c_hi[rows]), 2 * c[rows],
                               (c_lo[rows] + c_hi[rows]) / 2)
        return kept, kept_const, moved
