"""Carlini & Wagner's L2 attack (2017): the smallest L2 perturbation that changes the class,
found by minimising distance plus a constant c times a margin on the logits, with c searched
per image; a tanh change of variables and Adam, batched on the input's array module (NumPy or
CuPy). Its sibling with L-BFGS-B on the cross-entropy is ``lbfgs.py``.

It keeps, per image, the adversarial with the smallest L2 norm over every c tried, returns x
itself for an image where none was found, and reports in ``info``: "const" (N,), the c of the
kept adversarial (nan where none), and "failure" (N,) host strings: "" (success), "zero
gradient" (the misclassification term's gradient was exactly zero wherever it was asked for:
nothing to follow) or "not adversarial" (the budget ran out).
"""

import math

from nnscratch.backend import get_array_module

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

