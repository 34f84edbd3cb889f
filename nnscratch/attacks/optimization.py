"""Optimisation attacks: the smallest L2 perturbation that changes the class, found by minimising
distance plus a constant c times a misclassification term, with c searched per image.

- ``CarliniWagnerL2`` (Carlini & Wagner 2017): tanh change of variables, Adam, a margin on the
  logits; runs on the input's array module (NumPy or CuPy), batched.
- ``LBFGS`` (Szegedy et al. 2014): box-constrained L-BFGS on the cross-entropy, a host-side
  search (scipy) that calls the model once per function evaluation, one image at a time.

Both keep, per image, the adversarial with the smallest L2 norm over every c tried, return x
itself for an image where none was found, and report in ``info``: "const" (N,), the c of the
kept adversarial (nan where none), and "failure" (N,) host strings: "" (success), "zero
gradient" (the misclassification term's gradient was exactly zero wherever it was asked for:
nothing to follow) or "not adversarial" (the budget ran out).
"""

import math

import numpy as np
import scipy.optimize

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.checks import check_flag, check_integer, check_real
from nnscratch.attacks.norms import any_nonzero

# x = (tanh(w) + 1) / 2 has no finite w at x = 0 or 1: the references (Carlini's code, foolbox,
# cleverhans) shrink 2x - 1 by this factor before arctanh.
TANH_SHRINK = 1 - 1e-6
ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8       # Kingma & Ba's defaults, as Carlini's
ABORT_FRACTION = 0.9999          # early abort: stop unless the loss fell by 0.01% (Carlini's)
# With binary_search_steps >= 10 the last search reruns at the upper bound, capped here
# (Carlini's code and foolbox 3).
MAX_CONST = 1e10


def squared_l2(delta):
    """(N, ...) -> (N,) the squared L2 norm of each image."""
    flat = delta.reshape(len(delta), -1)
    return (flat * flat).sum(axis=1)


class CarliniWagnerL2(Attack):
    """Carlini & Wagner's L2 attack ("Towards Evaluating the Robustness of Neural Networks",
    2017). Per image, with the change of variables x_adv = (tanh(w) + 1) / 2 (always in [0, 1]),
    Adam minimises over w::

        ||x_adv - x0||_2^2 + c * f(x_adv)
        f = max(Z_y - max_{j != y} Z_j, -kappa)          untargeted (y the label)
        f = max(max_{j != t} Z_j - Z_t, -kappa)          targeted (t the target)

    Z the logits, kappa = ``confidence``. The gradient of f is one ``logit_gradient`` with w a
    row of +-1 at the two logits involved (0 where the hinge is inactive), chained through
    dx_adv/dw = (1 - tanh(w)^2) / 2 (``objective``).

    c is searched per image (``binary_search_steps`` searches of ``steps`` Adam steps, each from
    w0 with fresh Adam moments): it starts at ``initial_const``; after a search that found an
    adversarial, c_hi = c, else c_lo = c; then c *= 10 while no c_hi is known, else c =
    (c_lo + c_hi) / 2. With binary_search_steps >= 10 the last search uses c_hi (capped at 1e10),
    as Carlini's code and foolbox 3 do. Kept: the adversarial with the smallest ||x_adv - x||_2
    seen at any step of any search, where "adversarial" is taken on the logits with the margin
    kappa (argmax of Z + kappa e_y differs from y; argmax of Z - kappa e_t is t); info["const"]
    is the c of the search that found it.

    Choices the paper leaves open, taken from Carlini's code (and foolbox 3, its port):
    w0 = arctanh((2x - 1) * (1 - 1e-6)), so that pixels at exactly 0 or 1 have a finite w; the
    distance is measured to x0 = (tanh(w0) + 1) / 2 (the objective is then exactly 0 at the start),
    the kept norm to x itself. Adam: beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected, per pixel.
    f is shifted by kappa in the reported loss (max(m + kappa, 0) >= 0; the same gradient).
    ``abort_early``: at step 0 and every ceil(steps / 10) steps, an image stops its search unless
    its loss fell below 0.9999 times its loss at the previous check. Ours: the abort is decided
    per image (Carlini and foolbox compare the batch's summed loss), so an image's result does
    not depend on the batch it is in; an image whose gradient and Adam moment are both exactly
    zero (it can never move again) stops too; an image on which f's gradient was zero at every
    step of the first search is not searched again ("zero gradient").

    Queries per image (``Oracle``): per Adam step one for the logits (they choose f's logits) and
    one for the gradient while the hinge is active; one final prediction; one when y defaults to
    the predictions. Defaults: the paper's (its 10,000 steps cut to 1,000).
    """

    def __init__(self, confidence=0.0, steps=1000, binary_search_steps=9, initial_const=1e-3,
                 lr=1e-2, *, abort_early=True, targeted=False):
        self.confidence = check_real(confidence, "confidence")
        self.steps = check_integer(steps, "steps")
        self.binary_search_steps = check_integer(binary_search_steps, "binary_search_steps")
        self.initial_const = check_real(initial_const, "initial_const", positive=True)
        self.lr = check_real(lr, "lr", positive=True)
        self.abort_early = check_flag(abort_early, "abort_early")
        self.targeted = check_flag(targeted, "targeted")

    # ---------------------------------------------- the objective and its gradient

    def margins(self, z, labels):
        """(n,) margin m (f = max(m, -kappa)) and (n,) the other class j in it, from logits z."""
        xp = get_array_module(z)
        rows = xp.arange(len(z))
        others = z.copy()
        others[rows, labels] = -xp.inf
        other = others.argmax(axis=1)
        m = z[rows, labels] - z[rows, other]
        return (-m if self.targeted else m), other

    def objective(self, oracle, w, x0, labels, const, idx=None):
        """Loss (n,) and its gradient with respect to w; w, x0 (n, C, H, W), labels (n,) (y or
        t), const (n,), idx (n,) the images' indices in ``oracle`` (default: all, in order).
        Returns (loss, grad_w, z (n, K) logits at x_adv, x_adv, asked (n,): the hinge was active
        and f's gradient asked for (one query more), pulled (n,): it was nonzero)."""
        xp = get_array_module(w)
        idx = xp.arange(len(w)) if idx is None else idx
        t = xp.tanh(w)
        x_adv = (t + 1) / 2
        z = oracle.logits(x_adv, idx)
        m, other = self.margins(z, labels)
        kappa = z.dtype.type(self.confidence)
        delta = x_adv - x0
        const = const.astype(x_adv.dtype, copy=False)
        loss = squared_l2(delta) + const * xp.maximum(m + kappa, 0).astype(x_adv.dtype)
        grad_x = 2 * delta                                        # d ||x_adv - x0||^2
        asked = m >= -kappa                               # the hinge is active (or at its kink)
        pulled = xp.zeros(len(w), dtype=bool)
        hinge = xp.flatnonzero(asked)
        if hinge.size:
            rows = xp.arange(hinge.size)
            sign = -1 if self.targeted else 1                     # f = sign * (Z_label - Z_other)
            upstream = xp.zeros((hinge.size, z.shape[1]), dtype=z.dtype)
            upstream[rows, labels[hinge]] = sign * const[hinge]
            upstream[rows, other[hinge]] = -sign * const[hinge]
            grad_f = oracle.logit_gradient(x_adv[hinge], upstream, idx[hinge])[1]
            grad_f = grad_f.astype(w.dtype, copy=False)
            grad_x[hinge] += grad_f                               # c * df/dx_adv
            pulled[hinge] = any_nonzero(grad_f)
        grad_w = grad_x * ((1 - t * t) / 2)                       # dx_adv/dw = (1 - tanh^2) / 2
        return loss, grad_w, z, x_adv, asked, pulled

    def reached(self, z, labels):
        """(n,) bool: adversarial with the margin kappa, on logits z."""
        xp = get_array_module(z)
        rows = xp.arange(len(z))
        shifted = z.copy()
        kappa = z.dtype.type(self.confidence)
        if self.targeted:
            shifted[rows, labels] -= kappa
            return shifted.argmax(axis=1) == labels
        shifted[rows, labels] += kappa
        return shifted.argmax(axis=1) != labels

    # ---------------------------------------------- the search

    def run(self, oracle, x):
        xp = get_array_module(x)
        n, dtype = len(x), x.dtype
        labels = oracle.y if oracle.target is None else oracle.target
        w0 = xp.arctanh((2 * x - 1) * dtype.type(TANH_SHRINK))
        x0 = (xp.tanh(w0) + 1) / 2
        const = xp.full(n, self.initial_const, dtype=xp.float64)
        c_lo, c_hi = xp.zeros(n, dtype=xp.float64), xp.full(n, xp.inf, dtype=xp.float64)
        best, best_norm = x.copy(), xp.full(n, xp.inf, dtype=dtype)
        best_const, moved = xp.full(n, xp.nan, dtype=xp.float64), xp.zeros(n, dtype=bool)
        searching = xp.arange(n)
        check_every = math.ceil(self.steps / 10)
        for search in range(self.binary_search_steps):
            if search == self.binary_search_steps - 1 and self.binary_search_steps >= 10:
                const = xp.minimum(c_hi, MAX_CONST)
            found = xp.zeros(n, dtype=bool)
            w = w0.copy()
            m1, m2 = xp.zeros_like(w), xp.zeros_like(w)          # Adam's moments, per pixel
            previous = xp.full(n, xp.inf, dtype=dtype)
            idx = searching
            for step in range(self.steps):
                if not idx.size:
                    break
                loss, g, z, x_adv, asked, pulled = self.objective(
                    oracle, w[idx], x0[idx], labels[idx], const[idx], idx)
                moved[idx] |= pulled

                adv = self.reached(z, labels[idx])                # keep the smallest adversarial
                norm = xp.sqrt(squared_l2(x_adv - x[idx]))
                better = adv & (norm < best_norm[idx])
                keep = idx[better]
                best[keep], best_norm[keep] = x_adv[better], norm[better]
                best_const[keep] = const[keep]
                found[idx[adv]] = True

                stop = ~(any_nonzero(g) | any_nonzero(m1[idx]))    # stationary for ever
                if self.abort_early and step % check_every == 0:
                    stop |= ~(loss <= dtype.type(ABORT_FRACTION) * previous[idx])
                    previous[idx] = loss
                idx, g = idx[~stop], g[~stop]

                t = step + 1                                      # Adam, bias-corrected
                m1[idx] = ADAM_BETA1 * m1[idx] + (1 - ADAM_BETA1) * g
                m2[idx] = ADAM_BETA2 * m2[idx] + (1 - ADAM_BETA2) * g * g
                m_hat = m1[idx] / dtype.type(1 - ADAM_BETA1 ** t)
                v_hat = m2[idx] / dtype.type(1 - ADAM_BETA2 ** t)
                w[idx] -= dtype.type(self.lr) * m_hat / (xp.sqrt(v_hat) + dtype.type(ADAM_EPS))

            c_hi = xp.where(found, xp.minimum(c_hi, const), c_hi)
            c_lo = xp.where(found, c_lo, xp.maximum(c_lo, const))
            const = xp.where(xp.isinf(c_hi), const * 10, (c_lo + c_hi) / 2)
            if search == 0:
                searching = searching[moved[searching]]           # nothing to follow: done

        success = oracle.is_adversarial(best)
        return best, success, {"const": best_const,
                               "failure": failure_reasons(success, ~moved, "not adversarial")}


class LBFGS(Attack):
    """Box-constrained L-BFGS (Szegedy et al. 2014, "Intriguing properties of neural
    networks"), per image::

        minimise  ||eta||_2^2 + c * CE(x + eta, t)     subject to  x + eta in [0, 1]^D

    CE the softmax cross-entropy, t the target (targeted, the paper's form; Harms et al. target
    class 6). ``targeted=False`` is our untargeted variant, ||eta||^2 - c * CE(x + eta, y): push
    the cross-entropy of the label up (success: predicted != y).

    The minimisation is scipy's L-BFGS-B (``method="L-BFGS-B"``, the bounds as box constraints,
    ``max_iterations`` iterations, memory ``memory`` = 15 as foolbox 2), started at eta = 0, in
    float64 on the host: a host-side search that calls the model with x + eta in x's dtype on
    x's array module, one image at a time (CuPy inputs go to the host and each query back to the
    device). The objective is exact only to the model's precision (float32 for a float32 model).

    c is searched per image as foolbox 2 and cleverhans 3 did: c starts at ``initial_const`` and
    doubles after every run that does not end adversarial, until one does; then bisection
    between the largest c that failed (c_lo, 0 at first) and the smallest that succeeded
    (c_hi); ``binary_search_steps`` runs of L-BFGS-B per image in all (foolbox 2 doubled up to 30
    times and bisected to an absolute tolerance; a run count is ours, as cleverhans's).
    Kept: the adversarial end point with the smallest L2 norm over all runs (its c in
    info["const"]); an image whose cross-entropy gradient at x is exactly zero is not searched
    (no c moves it: "zero gradient").

    Queries per image: one per function evaluation (a gradient, the first at x), one prediction
    at the end of each run, plus one when y defaults to the model's predictions.
    """

    def __init__(self, targeted=True, initial_const=1e-2, binary_search_steps=10,
                 max_iterations=150, memory=15):
        self.targeted = check_flag(targeted, "targeted")
        self.initial_const = check_real(initial_const, "initial_const", positive=True)
        self.binary_search_steps = check_integer(binary_search_steps, "binary_search_steps")
        self.max_iterations = check_integer(max_iterations, "max_iterations")
        self.memory = check_integer(memory, "memory")

    def run(self, oracle, x):
        xp = get_array_module(x)
        labels = to_numpy(oracle.y if oracle.target is None else oracle.target)
        host = to_numpy(x).astype(np.float64)
        best, const = host.copy(), np.full(len(x), np.nan)
        moved = np.zeros(len(x), dtype=bool)
        for i in range(len(x)):
            best[i], const[i], moved[i] = self.search(oracle, x, host[i], labels[i:i + 1], i)
        x_adv = xp.asarray(best.astype(x.dtype))
        success = oracle.is_adversarial(x_adv)
        const = np.where(to_numpy(success), const, np.nan)
        return x_adv, success, {"const": xp.asarray(const),
                                "failure": failure_reasons(success, ~moved, "not adversarial")}

    def search(self, oracle, x, image, label, i):
        """(kept image, its c or nan, gradient nonzero) for image i, ``image`` its float64 host
        copy (C, H, W); x the batch (for its dtype and array module)."""
        xp = get_array_module(x)
        one = slice(i, i + 1)
        sign = 1 if self.targeted else -1                         # minimise +-c * CE
        label_dev = xp.asarray(label)

        def query(flat):                                          # CE and its gradient, (D,)
            x_query = xp.asarray(flat.reshape((1,) + image.shape).astype(x.dtype))
            losses, grad = oracle.loss_gradient(x_query, label_dev, one)
            return float(to_numpy(losses)[0]), to_numpy(grad).astype(np.float64).reshape(-1)

        def objective(flat, c):
            ce, grad = query(flat)
            eta = flat - start
            return eta @ eta + sign * c * ce, 2 * eta + sign * c * grad

        start = image.reshape(-1)
        if not query(start)[1].any():
            return image, np.nan, False
        bounds = scipy.optimize.Bounds(np.zeros_like(start), np.ones_like(start))
        kept, kept_norm, kept_const = image, np.inf, np.nan
        c, c_lo, c_hi = self.initial_const, 0.0, np.inf
        for _ in range(self.binary_search_steps):
            end = scipy.optimize.minimize(
                objective, start.copy(), args=(c,), jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": self.max_iterations, "maxcor": self.memory}).x
            end = np.clip(end, 0, 1).reshape(image.shape)
            adversarial = bool(oracle.is_adversarial(
                xp.asarray(end[None].astype(x.dtype)), xp.arange(i, i + 1))[0])
            if adversarial:
                norm = np.linalg.norm(end.astype(x.dtype) - image.astype(x.dtype))
                if norm < kept_norm:
                    kept, kept_norm, kept_const = end, norm, c
                c_hi = c
            else:
                c_lo = c
            c = 2 * c if math.isinf(c_hi) else (c_lo + c_hi) / 2
        return kept, kept_const, True
