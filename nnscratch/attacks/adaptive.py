"""Adaptive attacks: PGD (``iterative.py``) aimed at a defence it knows, by changing only the
gradient it ascends (``PGD.ascent``); the eps-ball, the steps and the projection are PGD's.

- ``EOTPGD``: expectation over transformation (Athalye, Carlini & Wagner 2018, "Obfuscated
  Gradients Give a False Sense of Security"; Athalye et al. 2018, "Synthesizing Robust
  Adversarial Examples") over the model's own randomness, its dropout masks, with an optional
  term that makes the stochastic passes agree: what a detector thresholding MC-dropout
  uncertainty measures (Alshemali et al.'s uncertainty detector, Feinman et al. 2017's
  Bayesian uncertainty).
- ``DetectorAwarePGD``: up the classifier's loss and down a detector's score at once, for any
  detector with a differentiable score (``score_gradient(x)``, like Feinman et al.'s KDE
  detector; Carlini & Wagner 2017, "Adversarial Examples Are Not Easily Detected").

The detector is passed in: attacks never import defences.
"""

from nnscratch.backend import get_array_module

from nnscratch.attacks.iterative import PGD
from nnscratch.attacks.norms import normalized
from nnscratch.checks import check_integer, check_real


class EOTPGD(PGD):
    """PGD on the expectation of the loss over the model's dropout masks, minus (``uncertainty
    _weight`` times) the spread of the label's probability over them. At step k, with S =
    ``samples`` stochastic passes s (``model.loss_gradient(x_k, label, mc_seed=seed + k S + s)``,
    dropout on), CE_s their cross-entropies at the label and p_s = exp(-CE_s) its probability::

        J(x') = mean_s CE_s(x', t) + w std_s p_s(x')          targeted: descend J (label t)
        J(x') = mean_s CE_s(x', y) - w std_s p_s(x')          untargeted: ascend J (label y)

    so that the step both moves the class and makes the passes agree (w = 0: plain EOT, as
    torchattacks' EOTPGD). Its gradient, from the S input gradients dCE_s/dx alone (dp_s/dx =
    -p_s dCE_s/dx, and sum_s (p_s - mean p) = 0)::

        d std_s p_s / dx = sum_s (p_s - mean p)(-p_s) / (S (std p + 1e-12)) dCE_s/dx

    (1e-12 keeps a zero spread finite). The rest is PGD: ``step`` along sign(g) (linf) or
    g / ||g||_2 (l2), projected onto the eps-ball and [0, 1]. A model whose passes are random
    by themselves (preprocessing that draws noise) is averaged over those draws as well.

    random_start is off by default, unlike PGD: the masks come from the seeds seed + k S + s,
    and the random start from ``new_rng(seed)``, the same stream as the first pass's masks.
    Queries per image: ``samples`` per step (one per pass), one for the final prediction, one
    when y defaults to the model's predictions. info["failure"] as PGD's.
    """

    def __init__(self, eps, step=None, steps=40, norm="linf", random_start=False, seed=0, *,
                 samples=10, uncertainty_weight=0.0, targeted=False):
        super().__init__(eps, step, steps, norm, random_start, seed, targeted=targeted)
        self.samples = check_integer(samples, "samples")
        self.uncertainty_weight = check_real(uncertainty_weight, "uncertainty_weight")

    def ascent(self, oracle, x_adv, k):
        """The gradient to ascend at step k (see the class docstring), like x_adv."""
        xp = get_array_module(x_adv)
        labels = oracle.y if oracle.target is None else oracle.target
        losses, gradients = zip(*(oracle.loss_gradient(x_adv, labels,
                                                       mc_seed=self.seed + k * self.samples + s)
                                  for s in range(self.samples)))
        p = xp.exp(-xp.stack(losses))                                    # (S, N)
        g = xp.stack(gradients)                                          # (S, N, C, H, W)
        spread = p.std(axis=0) + 1e-12                                   # (N,)
        d_spread = (p - p.mean(axis=0)) * -p / (self.samples * spread)   # (S, N)
        spread_gradient = xp.einsum("sn,snchw->nchw", d_spread, g)       # d std_s p_s / dx
        if oracle.target is None:
            ascent = g.mean(axis=0) - self.uncertainty_weight * spread_gradient
        else:
            ascent = -(g.mean(axis=0) + self.uncertainty_weight * spread_gradient)
        return ascent.astype(x_adv.dtype, copy=False)


class DetectorAwarePGD(PGD):
    """PGD up the classifier's loss and down a detector's score ("higher = more likely
    adversarial"), each gradient scaled to unit L2 length per image first, so that neither
    drowns the other::

        g_k = g_L / ||g_L||_2 - w * g_D / ||g_D||_2
        g_L = grad L(x_k, y) (minus grad L(x_k, t), targeted),   g_D = detector.score_gradient(x_k)

    w = ``detector_weight`` (1: the two directions count the same). The rest is PGD: ``step``
    along sign(g_k) (linf) or g_k / ||g_k||_2 (l2), projected onto the eps-ball and [0, 1].

    ``detector``: any object with ``score_gradient(x) -> like x``, the gradient of its score
    (for Feinman et al.'s KDE detector, of the decision value through its density term); it is
    not a setting (``objects``). Queries per image: two per step (the loss gradient, and the
    detector's gradient, counted as one whatever the detector runs inside), one for the final
    prediction, one when y defaults to the model's predictions. info["failure"] as PGD's.
    """

    objects = ("detector",)

    def __init__(self, detector, eps, step=None, steps=40, norm="linf", random_start=True,
                 seed=0, *, detector_weight=1.0, targeted=False):
        if not callable(getattr(detector, "score_gradient", None)):
            raise TypeError(f"DetectorAwarePGD needs a detector with score_gradient(x), got "
                            f"{type(detector).__name__}")
        super().__init__(eps, step, steps, norm, random_start, seed, targeted=targeted)
        self.detector = detector
        self.detector_weight = check_real(detector_weight, "detector_weight")

    def ascent(self, oracle, x_adv, k):
        """The gradient to ascend at step k (see the class docstring), like x_adv."""
        loss = normalized(oracle.gradient(x_adv), "l2")
        oracle.count(slice(None))                                # the detector's gradient
        score = self.detector.score_gradient(x_adv).astype(x_adv.dtype, copy=False)
        return loss - self.detector_weight * normalized(score, "l2")
