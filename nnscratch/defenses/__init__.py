"""Defences: preprocessing transforms, models wrapped with a defence (which keep the model
interface, so attacks can target them), and the fitted detectors and reject options, which
share one ``fit`` convention and their checks (``base.Defence``).

- ``base``: ``Defence`` (fit(model, x, y, x_adv=None, *, named data), predict, score; the
  fitted check, images in [0, 1], flattened taps)
- ``preprocessing``: ``GaussianNoise``, ``Blur``, ``Shift``, ``Round``, ``Compose``
  (Günther et al.'s Table 2), each ``t(x, rng)``, ``t.forward`` -> (x', pullback), ``t.vjp``;
  ``BPDA(t)``: t's output with the identity as its pullback
- ``integrated``: ``IntegratedModel`` (Wang & Zhang: an MLP ``combiner`` on several
  networks' logits)
- ``ensemble``: ``BaggingNoiseEnsemble`` (Harms et al.'s bagging with noise: members on noisy
  bootstrap replicates, their mean softmax as one model, ``prefix(k)``, ``predict_vote``)
- ``squeezing``: ``MedianFilter``, ``BitDepth`` (Xu et al.'s feature squeezing), transforms too
- ``padding``: scipy.ndimage's border modes as matrices (the median filter, the blur's modes)
- ``wrappers``: ``Preprocessed(model, t)``, ``FiveCropAverage(model)``
- ``openmax``: ``OpenMax`` (fit / predict / score / predict_proba) and ``OpenMaxModel``
- ``weibull``: the libMR-style Weibull tail fit behind OpenMax
- ``crops``: ``crop_resize``, ``CropResizeVote`` (five crops resized back, k-of-5 agreement)
- ``uncertainty``: ``mc_uncertainty``, ``information_gain_thresholds``,
  ``UncertaintyCropDetector`` (Alshemali et al.'s Algorithm 1)
- ``kde``: ``KDEUncertaintyDetector`` (Feinman et al.'s density + uncertainty detector)
- ``svm``: ``RBFOneVsRest`` (one-vs-all RBF SVMs with their decision and its gradient by hand)
- ``dnr``: ``DeepNeuralRejection``, ``NeuralRejection`` (Sotgiu et al.; Melis et al.)
- ``rejection``: ``threshold_for_rate``, ``SoftmaxThreshold``, ``AtRejectRate``,
  ``RejectingModel`` (a reject option with the model interface, K + 1 logits)
- ``training``: objectives for ``nnscratch.training.fit(..., objective=...)``:
  ``CrossEntropy`` (label smoothing), ``AdversarialTraining`` (per batch, Goodfellow et al.;
  Wang & Zhang), ``AdversarialRetraining`` (once per epoch, Harms et al.), and
  ``smoothed_cross_entropy``

A defence never imports an attack (attacks and defences are siblings).
"""

from nnscratch.defenses.base import Defence
from nnscratch.defenses.crops import CropResizeVote, crop_resize
from nnscratch.defenses.dnr import DeepNeuralRejection, NeuralRejection
from nnscratch.defenses.ensemble import BaggingNoiseEnsemble
from nnscratch.defenses.integrated import IntegratedModel, combiner
from nnscratch.defenses.kde import KDEUncertaintyDetector
from nnscratch.defenses.openmax import OpenMax, OpenMaxModel
from nnscratch.defenses.preprocessing import (BPDA, Blur, Compose, GaussianNoise, Round, Shift,
                                              Transform, table2_transforms)
from nnscratch.defenses.rejection import (AtRejectRate, RejectingModel, SoftmaxThreshold,
                                          threshold_for_rate)
from nnscratch.defenses.squeezing import BitDepth, MedianFilter
from nnscratch.defenses.svm import RBFOneVsRest
from nnscratch.defenses.training import (AdversarialRetraining, AdversarialTraining, CrossEntropy,
                                         smoothed_cross_entropy)
from nnscratch.defenses.uncertainty import (UncertaintyCropDetector,
                                            information_gain_thresholds, mc_uncertainty)
from nnscratch.defenses.weibull import WeibullTail, fit_tail
from nnscratch.defenses.wrappers import FiveCropAverage, Preprocessed, five_crops

__all__ = ["Defence", "Transform", "BPDA", "GaussianNoise", "Blur", "Shift", "Round",
           "Compose", "table2_transforms", "MedianFilter", "BitDepth", "Preprocessed",
           "FiveCropAverage", "five_crops", "IntegratedModel", "combiner", "OpenMax",
           "OpenMaxModel", "WeibullTail", "fit_tail", "crop_resize", "CropResizeVote",
           "mc_uncertainty", "information_gain_thresholds", "UncertaintyCropDetector",
           "KDEUncertaintyDetector", "RBFOneVsRest", "DeepNeuralRejection", "NeuralRejection",
           "threshold_for_rate", "SoftmaxThreshold", "AtRejectRate", "RejectingModel",
           "CrossEntropy", "AdversarialTraining", "AdversarialRetraining",
           "smoothed_cross_entropy", "BaggingNoiseEnsemble"]
