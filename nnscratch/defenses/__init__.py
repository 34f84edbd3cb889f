"""Defences (DESIGN.md, "Defence contract"): preprocessing transforms, models wrapped with a
defence (which keep the model interface, so attacks can target them), and OpenMax.

- ``preprocessing``: ``GaussianNoise``, ``Blur``, ``Shift``, ``Round``, ``Compose``
  (Günther et al.'s Table 2), each ``t(x, rng)``, ``t.forward`` -> (x', pullback), ``t.vjp``
- ``wrappers``: ``Preprocessed(model, t)``, ``FiveCropAverage(model)``
- ``openmax``: ``OpenMax`` (fit / predict / score / predict_proba) and ``OpenMaxModel``
- ``weibull``: the libMR-style Weibull tail fit behind OpenMax

A defence never imports an attack (attacks and defences are siblings).
"""

from nnscratch.defenses.openmax import OpenMax, OpenMaxModel
from nnscratch.defenses.preprocessing import (Blur, Compose, GaussianNoise, Round, Shift,
                                              Transform, table2_transforms)
from nnscratch.defenses.weibull import WeibullTail, fit_tail
from nnscratch.defenses.wrappers import FiveCropAverage, Preprocessed, five_crops

__all__ = ["Transform", "GaussianNoise", "Blur", "Shift", "Round", "Compose",
           "table2_transforms", "Preprocessed", "FiveCropAverage", "five_crops", "OpenMax",
           "OpenMaxModel", "WeibullTail", "fit_tail"]
