"""Training-time defences: objectives for ``nnscratch.training.fit(..., objective=...)``.

An objective is what a training step minimises (its protocol is in ``nnscratch.training``):

- ``CrossEntropy(label_smoothing)``: the mean cross-entropy against smoothed targets;
- ``AdversarialTraining(attack, alpha)``: alpha L(x) + (1 - alpha) L(x_adv), with x_adv made
  for every batch on the current model (Goodfellow et al. 2015; Wang & Zhang's FGSM training);
- ``AdversarialRetraining(attack, alpha)``: the same loss, with the adversarials of the whole
  training set made once before every epoch (Harms et al.'s adversarial retraining).

The attack is passed in: any object with ``generate(model, x, y)`` and ``settings()``, such as
``nnscratch.attacks.FGSM(eps=0.3)`` (a defence never imports an attack). It uses the model
interface, so it sees the model in eval mode (no dropout), and no gradient flows through it:
x_adv is a constant of the step, as in Goodfellow et al.'s and cleverhans' training.
"""

import numpy as np
from tqdm.auto import tqdm

from nnscratch.backend import get_array_module, to_device, to_numpy
from nnscratch.checks import check_choice, check_integer, check_real
from nnscratch.losses import softmax_cross_entropy
from nnscratch.ops import log_softmax


def smoothed_cross_entropy(logits, labels, smoothing):
    """Cross-entropy against the smoothed targets t_n = (1 - s) onehot(y_n) + s / K (Szegedy et
    al. 2016; cleverhans' rule y -= s (y - 1/K), which Wang & Zhang's code ran with s = 0.1)::

        L_n = -sum_k t_nk log p_nk = (1 - s) (-log p_n,y_n) + s (-(1/K) sum_k log p_nk)
        dL_n/dz_n = p_n - t_n = (1 - s) (p_n - onehot(y_n)) + s (p_n - 1/K)

    p = softmax(z). logits (N, K) float; labels (N,) int in [0, K); smoothing s in [0, 1).
    Returns (losses (N,), grad (N, K)), the gradient of the sum as in ``softmax_cross_entropy``,
    which it equals bitwise for s = 0.
    """
    xp = get_array_module(logits)
    losses, grad = softmax_cross_entropy(logits, labels)        # -log p_y, p - onehot(y)
    s = logits.dtype.type(smoothing)
    log_p = log_softmax(logits)
    k = logits.shape[1]
    return (1 - s) * losses - s * log_p.mean(axis=1), (1 - s) * grad + s * (xp.exp(log_p) - 1 / k)


def weighted_gradients(model, x, y, weights, smoothing, rng):
    """One training pass of sum_n w_n L_n (L: ``smoothed_cross_entropy``) through a
    ``Sequential``: forward with dropout (``rng``), backward filling every layer's ``grads``.

    x (N, C, H, W), y (N,), weights (N,) on x's device. Returns (sum_n w_n L_n, logits (N, K)).
    """
    z = model.forward(x, training=True, rng=rng)
    losses, grad = smoothed_cross_entropy(z, y, smoothing)
    model.backward(grad * weights[:, None], param_grads=True, input_grad=False)
    return float((weights * losses).sum()), z


def check_smoothing(value):
    """A label smoothing s in [0, 1) (s = 1 would make every target uniform)."""
    return check_real(value, "label_smoothing", below=1)


class CrossEntropy:
    """The mean cross-entropy against targets smoothed by ``label_smoothing`` s, in [0, 1)
    (``smoothed_cross_entropy``); with s = 0, fit's default objective (the same weights)."""

    def __init__(self, label_smoothing=0.0):
        self.label_smoothing = check_smoothing(label_smoothing)

    def settings(self):
        return {"objective": type(self).__name__, "label_smoothing": self.label_smoothing}

    def gradients(self, model, x, y, index, rng):
        xp, n = get_array_module(x), len(x)
        return weighted_gradients(model, x, y, xp.full(n, 1 / n, dtype=x.dtype),
                                  self.label_smoothing, rng)


class AdversarialTraining:
    """Adversarial training (Goodfellow, Shlens & Szegedy 2015, eq. 6); each step minimises

        alpha * mean_n L(x_n, y_n) + (1 - alpha) * mean_n L(x_adv_n, y_n)

    on a batch x (N, C, H, W), with x_adv = attack.generate(model, x, labels).x_adv made on
    the current model, and L the cross-entropy smoothed by ``label_smoothing``. Goodfellow et
    al. and Wang & Zhang (FGSM, eps 0.3, s = 0.1) take alpha = 0.5.

    The step is one forward and one backward pass of the 2N images [x; x_adv] with per-image
    weights alpha / N and (1 - alpha) / N. Since no layer mixes the images of a batch, its
    parameter gradient equals alpha times that of a clean pass plus (1 - alpha) times that of
    an adversarial one (only the dropout masks are drawn for 2N images at once).

    labels: which labels the attack moves away from. "predicted" (default): the model's own
    predictions (generate(..., y=None)), as cleverhans' FGSM does when given none, which is
    how Wang & Zhang's code ran it; Kurakin, Goodfellow & Bengio (2017) advise it, as true
    labels "leak" into the perturbation and the model learns to read them there. "true": y.
    The loss of x_adv always uses the true labels y.
    """

    def __init__(self, attack, alpha=0.5, label_smoothing=0.0, labels="predicted"):
        if not (callable(getattr(attack, "generate", None))
                and callable(getattr(attack, "settings", None))):
            raise TypeError("attack must be an attack with generate(model, x, y) and settings(), "
                            f"e.g. nnscratch.attacks.FGSM(eps=0.3); got {attack!r}")
        self.attack = attack
        self.alpha = check_real(alpha, "alpha")
        if self.alpha > 1:
            raise ValueError(f"alpha (the clean loss's weight) must be in [0, 1], got {alpha!r}")
        self.label_smoothing = check_smoothing(label_smoothing)
        self.labels = check_choice(labels, "labels", ("predicted", "true"))

    def settings(self):
        """The objective's settings and its attack's (type and settings), JSON-ready."""
        return {"objective": type(self).__name__, "attack": type(self.attack).__name__,
                "attack_settings": self.attack.settings(), "alpha": self.alpha,
                "label_smoothing": self.label_smoothing, "labels": self.labels}

    def attack_batch(self, model, x, y):
        """x_adv (N, C, H, W) of one batch on ``model`` as it is now."""
        return self.attack.generate(model, x, y=None if self.labels == "predicted" else y).x_adv

    def adversarials(self, model, x, y, index):
        """The adversarials of the batch: made now, on the current model."""
        return self.attack_batch(model, x, y)

    def gradients(self, model, x, y, index, rng):
        """Fills the parameter gradients of the step's loss; returns (loss, logits of x (N, K))."""
        xp, n = get_array_module(x), len(x)
        x_adv = self.adversarials(model, x, y, index)
        weights = xp.concatenate([xp.full(n, self.alpha / n, dtype=x.dtype),
                                  xp.full(n, (1 - self.alpha) / n, dtype=x.dtype)])
        loss, z = weighted_gradients(model, xp.concatenate([x, x_adv]), xp.concatenate([y, y]),
                                     weights, self.label_smoothing, rng)
        return loss, z[:n]


class AdversarialRetraining(AdversarialTraining):
    """Adversarial retraining (Harms, Harper & Sunkara): ``AdversarialTraining``'s loss, with
    the adversarials of the whole training set made before every epoch on the model of that
    moment (``start_epoch``, in batches of ``batch_size``, kept on the host), which the epoch's
    steps then read by position. Harms et al. start from the trained model (pass it to fit),
    regenerate after every epoch and "train on the normal and the adversarial loss".

    Left open by them, chosen here: alpha 0.5 (Goodfellow et al.'s weights); labels "true"
    (default), the y of their attacks' formulas J(theta, x, y).
    """

    def __init__(self, attack, alpha=0.5, label_smoothing=0.0, labels="true", batch_size=500):
        super().__init__(attack, alpha, label_smoothing, labels)
        self.batch_size = check_integer(batch_size, "batch_size")
        self.x_adv = None                           # (N, C, H, W), host, made by start_epoch

    def settings(self):
        return dict(super().settings(), batch_size=self.batch_size)

    def start_epoch(self, model, x, y, epoch, progress=False):
        """Make the adversarials of the training set x (N, C, H, W), y (N,) (host arrays)."""
        device = model.device or "cpu"
        self.x_adv = np.empty_like(x)
        for i in tqdm(range(0, len(x), self.batch_size), desc=f"adversarials {epoch + 1}",
                      disable=not progress, leave=False, unit="batch"):
            part = slice(i, i + self.batch_size)
            self.x_adv[part] = to_numpy(self.attack_batch(model, to_device(x[part], device),
                                                          to_device(y[part], device)))

    def adversarials(self, model, x, y, index):
        """The stored adversarials of the batch's positions ``index`` in the training set."""
        if self.x_adv is None:
            raise RuntimeError("AdversarialRetraining has no adversarials yet: start_epoch makes "
                               "them (fit calls it before every epoch)")
        return to_device(self.x_adv[index], model.device or "cpu")
