"""Extreme-value models of the largest distances: the Weibull fits behind OpenMax.

Bendale & Boult (2016) model, per class, how far the activation vectors of correctly
classified training images lie from their class's mean activation vector (MAV): a Weibull
distribution fitted to the ``tailsize`` largest distances (extreme value theory: the tail of
the distances, not their bulk). Its CDF at a test image's distance is the probability that the
image is an outlier of the class.

libMR's ``FitHigh`` (MetaRecognition.cpp; OSDN calls ``mr.fit_high(distances, tailsize)``)
sorts the data, keeps the ``tailsize`` largest values, translates them so that the smallest
kept value sits at ``translate_amount`` (t = d + translate_amount - small_score), fits a
two-parameter Weibull (location 0) by maximum likelihood, and evaluates
CDF(d) = 1 - exp(-((d + translate_amount - small_score) / scale) ^ shape).
``fit_tail`` does the same. The maximum-likelihood equations of a two-parameter Weibull
reduce to one equation in the shape k (then scale^k = mean(t^k)),

    g(k) = sum_i t_i^k ln t_i / sum_i t_i^k - 1/k - mean(ln t) = 0,

increasing in k (g' = a weighted variance of ln t + 1/k^2 > 0). libMR (a port of MATLAB's
wblfit) solves the same equation, written for 1/k on ln t, with a bracketing root finder
(dfzero); ``weibull_mle`` brackets the root and runs Brent's method (``scipy.optimize.brentq``);
the tests check it against ``scipy.stats.weibull_min.fit(t, floc=0)``. ``fit_tail``'s
``translation`` is libMR's translate_amount: 10000, the default of libMR's C++ class and of
its Python wrapper in earlier releases (later releases of the wrapper default to 1); the fitted
CDFs over the distances differ little (the tests compare 1 and 10000). With a
large translation the shape is large (about translation / spread of the tail, ~1e5), so g is
evaluated in s = ln(t / max t) <= 0, where t^k cannot overflow, and the CDF in float64.
``translation=None`` fits the raw distances (no shift): the plain two-parameter Weibull, for
data that are Weibull themselves.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from nnscratch.backend import get_array_module, to_numpy


@dataclass
class WeibullTail:
    """CDF(d) = 1 - exp(-((d + shift) / scale) ^ shape), for d + shift > 0 (else 0)."""

    shape: float
    scale: float
    shift: float

    def cdf_and_pdf(self, d):
        """(CDF(d), dCDF/dd), elementwise; d a float64 array of any module."""
        return weibull_cdf_and_pdf(d, self.shape, self.scale, self.shift)


def weibull_cdf_and_pdf(d, shape, scale, shift):
    """1 - exp(-u^k) and its derivative k u^k / t exp(-u^k), t = d + shift, u = t / scale,
    broadcasting d (..., K) against per-class parameters (K,) (or scalars); 0 where t <= 0."""
    xp = get_array_module(d)
    t = xp.maximum(d + shift, 0)
    u_k = (t / scale) ** shape
    cdf = -xp.expm1(-u_k)
    positive = t > 0
    pdf = xp.where(positive, shape * u_k / xp.where(positive, t, 1) * xp.exp(-u_k), 0)
    return cdf, pdf


def fit_tail(distances, tailsize, translation=10000.0):
    """A ``WeibullTail`` fitted to the ``tailsize`` largest of ``distances`` (n,), n >= tailsize.

    translation: libMR's translate_amount (see the module docstring), or None for no shift.
    """
    d = np.sort(to_numpy(distances).astype(np.float64))
    if len(d) < tailsize:
        raise ValueError(f"cannot fit a tail of {tailsize} values to {len(d)} distances")
    tail = d[len(d) - tailsize:]
    shift = 0.0 if translation is None else float(translation) - float(tail[0])
    t = tail + shift
    if t[0] <= 0:
        raise ValueError("a Weibull needs positive values: the smallest tail value is "
                         f"{t[0]} after the translation")
    if t[-1] - t[0] <= 1e-12 * max(abs(t[-1]), 1.0):
        raise ValueError(f"the {tailsize} largest distances are all equal ({tail[0]}): "
                         "a Weibull cannot be fitted to a tail without spread")
    shape, scale = weibull_mle(t)
    return WeibullTail(shape, scale, shift)


def weibull_mle(t):
    """Maximum-likelihood (shape, scale) of a Weibull with location 0 for t > 0 (n,), not all
    equal: the root of g (module docstring), bracketed by doubling and halving."""
    s = np.log(t / t.max())                          # <= 0, the largest is 0
    mean_s = s.mean()

    def g(k):
        e = np.exp(k * s)                            # t^k / max(t)^k, in (0, 1]
        return (e * s).sum() / e.sum() - 1 / k - mean_s

    low, high = 1.0, 1.0
    while g(low) > 0:
        low /= 2
    while g(high) < 0:
        high *= 2
    shape = brentq(g, low, high, xtol=1e-14, rtol=1e-15)
    scale = t.max() * np.mean(np.exp(shape * s)) ** (1 / shape)
    return float(shape), float(scale)
