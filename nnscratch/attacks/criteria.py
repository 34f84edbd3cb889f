"""When an attack has succeeded on an image: the criterion as an object (foolbox 3's
``Misclassification`` and ``TargetedMisclassification``).

A criterion holds the labels it needs, one per image, and decides from the model's logits::

    criterion(z, idx=slice(None)) -> (n,) bool     z (n, K) the logits of the rows idx of the
                                                    N images (an index array, or a slice)

``Attack.generate`` gives its ``Oracle`` ``Misclassification(y)``, or
``TargetedMisclassification(target)`` for a targeted attack, unless the attack asks for another
(``Attack.success_criterion``); ``oracle.is_adversarial(x)`` is the criterion on the logits of x.
A criterion also judges images after the fact: ``MisclassificationNotRejected(y)(
model.logits(result.x_adv))`` is the success of any attack on a model with a reject option.
"""

from nnscratch.backend import get_array_module
from nnscratch.ops import softmax


class Misclassification:
    """Untargeted success: the predicted class argmax_k z_k is not the label y."""

    def __init__(self, labels):
        self.labels = labels                                   # (N,) y

    def __call__(self, z, idx=slice(None)):
        return z.argmax(axis=1) != self.labels[idx]


class TargetedMisclassification:
    """Targeted success: the predicted class argmax_k z_k is the target t."""

    def __init__(self, target):
        self.target = target                                   # (N,) t

    def __call__(self, z, idx=slice(None)):
        return z.argmax(axis=1) == self.target[idx]


class MisclassificationNotRejected:
    """Success on a model with a reject option, whose logits are z = [s_1 .. s_K, s_R] (n, K + 1)
    with the reject score last (``RejectingModel`` of nnscratch.defenses.wrappers: argmax == K
    means "rejected"): the prediction is neither the label y nor the reject class. The attack of
    Sotgiu et al. (2019, "Deep Neural Rejection against Adversarial Examples") counts this.
    """

    def __init__(self, labels):
        self.labels = labels                                   # (N,) y

    def __call__(self, z, idx=slice(None)):
        predicted = z.argmax(axis=1)
        return (predicted != self.labels[idx]) & (predicted != z.shape[1] - 1)


class TargetConfidence:
    """Success at a confidence: the probability of the target, softmax(z)_t, is at least
    ``confidence`` (Nguyen et al. 2015's fooling images; Günther et al.'s F50, F90, F99).

    ``reached(p, idx)`` decides on the target probabilities p (n,) themselves: an attack that
    has them already (as exp(-cross-entropy) from a loss gradient) needs no logits.
    """

    def __init__(self, target, confidence):
        self.target, self.confidence = target, confidence      # (N,) t, a number in (0, 1)

    def reached(self, p, idx=slice(None)):
        return p >= self.confidence

    def __call__(self, z, idx=slice(None)):
        xp = get_array_module(z)
        return self.reached(softmax(z)[xp.arange(len(z)), self.target[idx]], idx)


def default_criterion(y, target):
    """``Misclassification(y)``, or ``TargetedMisclassification(target)`` when a target is given."""
    return Misclassification(y) if target is None else TargetedMisclassification(target)
