"""The Jacobian-based saliency map attack, JSMA (Papernot, McDaniel, Jha, Fredrikson, Celik &
Swami 2016, "The Limitations of Deep Learning in Adversarial Settings"), with its original
pairwise saliency map.

Each step takes the Jacobian of the logits, J = dZ/dx (``model.jacobian``), and for the target
class t scores every pair of pixels (p, q) of the search domain::

    alpha_pq = dZ_t/dx_p + dZ_t/dx_q                     (the target's logit)
    beta_pq  = sum_{j != t} (dZ_j/dx_p + dZ_j/dx_q)      (every other logit)
    S(p, q)  = -alpha_pq * beta_pq   if alpha_pq > 0 and beta_pq < 0    (increasing variant)
               -alpha_pq * beta_pq   if alpha_pq < 0 and beta_pq > 0    (decreasing variant)

then moves the best pair by +theta (or -theta) and clips to [0, 1].
"""

import math

import numpy as np

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack
from nnscratch.checks import check_choice, check_flag, check_real

# Entries of the (n, D, D) pair scores computed at once: 2^22 float32 values are 16 MiB per
# temporary, a few of them alive at a time (for MNIST's D = 784, six images per chunk).
PAIR_CHUNK = 2 ** 22

FAILURES = ("", "budget reached", "no saliency", "zero gradient")


def best_pairs(alpha, beta, domain, increase):
    """The most salient pair of pixels per image: alpha, beta (n, D) per-pixel derivatives of
    the target logit and of the sum of the other logits; domain (n, D) bool, the pixels that may
    be chosen; ``increase`` picks the variant.

    Returns (p, q, found), each (n,): p < q, the first maximum of S(p, q) in row-major order
    over the upper triangle; found False where no pair is admissible (p, q are then 0).
    The pair sums are outer sums alpha_p + alpha_q, masked to the domain and to p < q, computed
    for a few images at a time so that memory stays near ``PAIR_CHUNK`` entries.
    """
    xp = get_array_module(alpha)
    n, d = alpha.shape
    upper = xp.triu(xp.ones((d, d), dtype=bool), k=1)                        # p < q
    p, q = xp.zeros(n, dtype=xp.int64), xp.zeros(n, dtype=xp.int64)
    found = xp.zeros(n, dtype=bool)
    chunk = max(1, PAIR_CHUNK // max(d * d, 1))
    for s in range(0, n, chunk):
        a, b, dom = alpha[s:s + chunk], beta[s:s + chunk], domain[s:s + chunk]
        a2 = a[:, :, None] + a[:, None, :]                                  # (c, D, D)
        b2 = b[:, :, None] + b[:, None, :]
        admissible = (a2 > 0) & (b2 < 0) if increase else (a2 < 0) & (b2 > 0)
        admissible &= dom[:, :, None] & dom[:, None, :] & upper
        score = xp.where(admissible, -a2 * b2, -math.inf).reshape(len(a), -1)
        best = score.argmax(axis=1)
        p[s:s + chunk], q[s:s + chunk] = best // d, best % d
        found[s:s + chunk] = admissible.reshape(len(a), -1).any(axis=1)
    return xp.where(found, p, 0), xp.where(found, q, 0), found


def runner_up(logits, y):
    """(N,) the most likely class other than y: the second most likely where the model
    predicts y."""
    xp = get_array_module(logits)
    others = logits.copy()
    others[xp.arange(len(y)), y] = -math.inf
    return others.argmax(axis=1)


class JSMA(Attack):
    """Jacobian-based saliency map attack (Papernot et al. 2016), the paper's Algorithms 2 and 3
    with the pairwise saliency map (see the module docstring for S(p, q))::

        domain = pixels that can still move in the variant's direction (x < 1, or x > 0)
        repeat until predicted == t, or floor(gamma * D / 2) steps, or |domain| < 2:
            (p, q) = argmax_{p < q in domain} S(p, q)    at the current x_adv, J = dZ/dx
            x_adv[p], x_adv[q] = clip(x_adv[p] +- theta, 0, 1), the same for q
            remove p and q from the domain once they reach 1 (increase) or 0 (decrease)

    D = C*H*W counts pixel values (channels separately). All N images step together; an image
    that succeeded or stopped is frozen.

    Choices the paper leaves open or that implementations take differently:
    - Logits: S is built on the Jacobian of the logits Z, as the paper's main algorithm (its
      Section III also discusses the softmax output F). torchattacks 3.5.1 uses the logits too
      (one backward pass per class per step, one image at a time); cleverhans 3's
      ``jsma_symbolic`` differentiates the softmax probabilities F (``model.get_probs``).
    - Score: -alpha * beta on the admissible pairs (alpha * |beta| of the paper's Eq. 10); the
      decreasing variant scores |alpha| * beta = -alpha * beta too. torchattacks scores
      alpha * |beta| in both variants, which is negative for every admissible decreasing pair,
      so its decreasing variant (theta < 0) always picks the pair (0, 0), the first zero of its
      map: it only ever lowers the first pixel (on digits, nothing). Not compared here. Ties go to the first pair in row-major order (p < q).
    - Domain: pixels already saturated in the variant's direction are left out from the start
      (cleverhans and torchattacks do this; the paper's Algorithm 3 starts from all pixels).
      torchattacks' thresholds are x < 0.99 (increase) and x > 0.01 (decrease); ours are exact,
      x < 1 and x > 0. A pixel leaves the domain when it saturates; with theta < 1 a pixel can
      be chosen again until then (the paper's rule; cleverhans and torchattacks drop a chosen
      pixel at once, the same thing when theta = 1).
    - Budget: floor(gamma * D / 2) pair steps, as the paper and cleverhans (torchattacks
      rounds up, ceil). So at most 2 * floor(gamma * D / 2) pixels change.
    - Defaults: theta = 1 and gamma = 0.1 (torchattacks' defaults; the paper's MNIST setting is
      theta = +1 with gamma = 14.5%); theta in (0, 1] (the variant gives the sign), gamma in
      (0, 1].
    - Untargeted use (targeted=False): the target of each image is the most likely class other
      than y at x (the second most likely where the model predicts y; one extra query per image),
      reported in info["target"]; success means the predicted class differs from y, and the
      search stops as soon as it does (whatever the class). torchattacks' untargeted default
      targets (y + 1) mod 10 instead.
    - No admissible pair: the image stops ("no saliency"); torchattacks then goes on with the
      pair (0, 0) of its empty map.

    Queries (``Oracle``'s convention): one per image for each success check (before
    every step and after the last one), one per image for each Jacobian (K backward passes, one
    forward), one for the untargeted target choice, plus one when y defaults to the model's
    predictions.
    info: "steps" (N,) int64 pair steps taken; "failure" (N,) host strings: "", "budget reached"
    (gamma's steps used), "no saliency" (no admissible pair, or fewer than two pixels left in
    the domain), "zero gradient" (the Jacobian is zero); for targeted=False also "target".
    """

    def __init__(self, theta=1.0, gamma=0.1, *, targeted=True, variant="increase"):
        self.theta = check_real(theta, "theta", positive=True)
        if self.theta > 1:
            raise ValueError(f"theta must be a number in (0, 1] (the variant gives the sign), "
                             f"got {theta!r}")
        self.gamma = check_real(gamma, "gamma", positive=True)
        if self.gamma > 1:
            raise ValueError(f"gamma must be a number in (0, 1] (the fraction of pixels that may "
                             f"change), got {gamma!r}")
        self.targeted = check_flag(targeted, "targeted")
        self.variant = check_choice(variant, "variant", ("increase", "decrease"))

    def budget(self, pixels):
        """The largest number of pair steps: floor(gamma * pixels / 2)."""
        return math.floor(self.gamma * pixels / 2)

    def run(self, oracle, x):
        xp = get_array_module(x)
        n, pixels = len(x), math.prod(x.shape[1:])
        increase = self.variant == "increase"
        if self.targeted:
            target = oracle.target
        else:
            target = runner_up(oracle.logits(x), oracle.y)
        x_adv = x.reshape(n, pixels).copy()                                   # (N, D)
        domain = x_adv < 1 if increase else x_adv > 0
        step = x.dtype.type(self.theta if increase else -self.theta)
        steps = xp.zeros(n, dtype=xp.int64)
        success = xp.zeros(n, dtype=bool)
        reason = xp.zeros(n, dtype=xp.int64)                  # index into FAILURES
        budget = self.budget(pixels)
        active = xp.arange(n)
        while active.size:
            adv = oracle.is_adversarial(x_adv[active].reshape((-1,) + x.shape[1:]), active)
            success[active[adv]] = True
            active = active[~adv]
            out_of_budget = steps[active] >= budget
            reason[active[out_of_budget]] = 1
            active = active[~out_of_budget]
            too_few = domain[active].sum(axis=1) < 2
            reason[active[too_few]] = 2
            active = active[~too_few]
            if not active.size:
                break

            jac = oracle.jacobian(x_adv[active].reshape((-1,) + x.shape[1:]), active)
            jac = jac.reshape(len(active), -1, pixels)                        # (n, K, D)
            zero = ~(jac != 0).reshape(len(active), -1).any(axis=1)
            alpha = jac[xp.arange(len(active)), target[active]]               # (n, D)
            beta = jac.sum(axis=1) - alpha
            p, q, found = best_pairs(alpha, beta, domain[active], increase)
            reason[active[zero]] = 3
            reason[active[~zero & ~found]] = 2
            keep = found & ~zero
            active, p, q = active[keep], p[keep], q[keep]

            for pixel in (p, q):
                moved = xp.clip(x_adv[active, pixel] + step, 0, 1)
                x_adv[active, pixel] = moved
                domain[active, pixel] = (moved < 1) if increase else (moved > 0)
            steps[active] += 1

        failure = np.asarray(FAILURES)[to_numpy(reason)]
        info = {"steps": steps, "failure": failure}
        if not self.targeted:
            info["target"] = target
        return x_adv.reshape(x.shape), success, info
