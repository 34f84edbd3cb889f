"""Kernel density and MC-dropout uncertainty, combined by a logistic regression: Feinman,
Curtin, Shintre & Gardner 2017, "Detecting adversarial samples from artifacts" (the comparison
point of Alshemali et al.: ROC-AUC 90.57% FGSM, 97.23% BIM-A, 98.13% JSMA on MNIST).

Two features of an image x, with f(x) (d,) the activations of layer ``layer`` (flattened) and
c the model's predicted class (eval mode):

    log density   log p_c(f) = log( 1/n_c sum_i exp(-|f - f_i|^2 / (2 h^2)) ) - d/2 log(2 pi h^2)
                  a Gaussian KDE with bandwidth h over the n_c training images of class c
                  (their true class), as scikit-learn's KernelDensity(kernel="gaussian")
    uncertainty   U = 1/T sum_t sum_k p_tk^2 - sum_k (1/T sum_t p_tk)^2 = sum_k var_t p_tk
                  over T = ``n_samples`` dropout passes (softmax probabilities p_t (K,))

standardised, v = (feature - mean) / std, then a logistic regression
P(adversarial) = sigmoid(w_d v_d + w_u v_u + b), fitted on negatives (clean x and noisy
x_noisy) and positives (x_adv). ``predict`` rejects (-1) where P(adversarial) > ``threshold``.

``score_gradient(x)`` is d(w_d v_d + w_u v_u + b)/dx through the density term only:

    d log p_c / df = sum_i softmax_i(-|f - f_i|^2 / (2 h^2)) (f_i - f) / h^2
    d logit / dx = (w_d / std_d) model.feature_gradient(x, layer, d log p_c / df)

with c held fixed (it is piecewise constant) and U treated as a constant: its gradient would
need the pullbacks of all T stochastic passes, so the gradient is that of the differentiable
term, the density. Per batch the network runs once forward (the tapped layer and the logits,
which give c) and once backward.

Choices (where Feinman et al. leave it open, or where we differ from their code):
- ``layer="relu_3"``: the last hidden layer of ``zoo.feinman_cnn`` (128 ReLU units, after
  dense_1 and before dropout_2); ``bandwidth=1.20``: their MNIST value.
- U is the paper's formula (their released code, as we know it, averages the variance over
  the classes instead of summing it: 1/K of U, the same feature once standardised). Computed
  as the centred variance, the same number, never negative in floating point.
- Standardisation as sklearn's ``scale`` in their code: mean and population std (ddof = 0) of
  each feature over all the regression's training images (clean, adversarial and noisy
  together); a zero std is replaced by 1 (as ``scale`` does). ``mean`` and ``std`` are stored
  and applied to new images.
- The regression: scikit-learn's ``LogisticRegressionCV`` as in their code: L2, 10 values of
  C chosen by accuracy over 5 stratified folds, lbfgs (its long-standing defaults; scoring is
  given explicitly because newer versions change that default); n_jobs left at 1 (they
  used all cores).
- Noisy samples, when ``x_noisy`` is not given: x plus Gaussian noise scaled so that each
  image's noise has the L2 norm of its adversarial perturbation |x_adv - x|, then clipped to
  [0, 1] (which may shorten it), drawn from a generator seeded with ``seed``. This is our
  reading of their noisy samples (their code tuned a noise scale per attack).
- The KDE and the features run in float64; log densities and scores are float64.
- Which images to fit on is the caller's choice (Feinman et al. keep only the test images
  whose clean version the model classifies correctly, with their noisy and adversarial
  versions).
"""

import math
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegressionCV

from nnscratch.backend import get_array_module, new_rng, to_numpy
from nnscratch.defenses.base import Defence, flat
from nnscratch.defenses.uncertainty import mc_passes
from nnscratch.checks import check_integer, check_labels, check_real, check_seed
from nnscratch.model import LOGITS
from nnscratch.ops import softmax

KERNEL_ENTRIES = 2 ** 22          # chunk size: at most this many image-to-training-point distances


def kde_log_density(f, points, bandwidth, gradient=False):
    """Gaussian KDE log density of each row of f (n, d) over ``points`` (m, d), and optionally
    its gradient d log p / df (n, d); float64, in f's array module.

    log p(f) = logsumexp_i(-|f - f_i|^2 / (2 h^2)) - log m - d/2 log(2 pi h^2): the same as
    sklearn's ``KernelDensity(kernel="gaussian", bandwidth=h).fit(points).score_samples(f)``.
    Rows are processed in chunks so that at most ``KERNEL_ENTRIES`` distances are held at once.
    """
    xp = get_array_module(f)
    f, points = f.astype(xp.float64), points.astype(xp.float64)
    h2 = bandwidth ** 2
    m, d = points.shape
    constant = math.log(m) + d / 2 * math.log(2 * math.pi * h2)
    points_sq = (points * points).sum(axis=1)                               # (m,)
    log_p = xp.empty(len(f), dtype=xp.float64)
    grad = xp.empty_like(f) if gradient else None
    rows = max(1, KERNEL_ENTRIES // m)
    for start in range(0, len(f), rows):
        block = f[start:start + rows]                                       # (b, d)
        sq = (block * block).sum(axis=1, keepdims=True) + points_sq - 2 * block @ points.T
        a = -xp.maximum(sq, 0) / (2 * h2)                                   # (b, m)
        top = a.max(axis=1, keepdims=True)
        log_p[start:start + rows] = (top[:, 0] + xp.log(xp.exp(a - top).sum(axis=1))
                                     - constant)
        if gradient:
            # d/df logsumexp_i a_i = sum_i softmax_i(a) da_i/df,  da_i/df = (f_i - f) / h^2
            grad[start:start + rows] = (softmax(a) @ points - block) / h2
    return log_p, grad


def standardise(values, mean, std):
    return (values - mean) / std


class KDEUncertaintyDetector(Defence):
    """Feinman et al.'s detector (module docstring): KDE log density + MC-dropout uncertainty.

    fit(model, x, y, x_adv, *, density_data, x_noisy=None) -> self
    features(x) -> (log_density (N,), uncertainty (N,))     decision_function(x) -> (N,) logit
    score(x) -> (N,) P(adversarial)       predict(x) -> (N,) label or -1
    score_gradient(x) -> like x           log_densities(x), uncertainties(x) -> (N,)
    Fitted state: ``model``, ``class_features`` (K arrays (n_c, d), float64, host), ``mean``
    and ``std`` (2,), ``coef`` (2,) and ``intercept`` of the regression, ``regression``.
    """

    def __init__(self, layer="relu_3", bandwidth=1.20, n_samples=50, seed=0, threshold=0.5):
        if not isinstance(layer, str):
            raise TypeError(f"KDEUncertaintyDetector: layer must be a layer name, got {layer!r}")
        self.layer = layer
        self.bandwidth = check_real(bandwidth, "KDEUncertaintyDetector: bandwidth", positive=True)
        self.n_samples = check_integer(n_samples, "KDEUncertaintyDetector: n_samples", minimum=2)
        self.seed = check_seed(seed, "KDEUncertaintyDetector: seed")
        self.threshold = check_real(threshold, "KDEUncertaintyDetector: threshold", below=1)
        self.class_features = self.regression = None
        self._on_device = {}             # array module name -> class_features there

    def __repr__(self):
        return (f"KDEUncertaintyDetector(layer={self.layer!r}, bandwidth={self.bandwidth}, "
                f"n_samples={self.n_samples}, seed={self.seed}, threshold={self.threshold})")

    # ---------------------------------------------- the two features

    def class_points(self, xp):
        """The per-class training features as float64 arrays of module xp (cached)."""
        # keyed by the module's name, not the module, so that the detector can be deep-copied
        if xp.__name__ not in self._on_device:
            self._on_device[xp.__name__] = [xp.asarray(p) for p in self.class_features]
        return self._on_device[xp.__name__]

    def densities(self, x, model=None):
        """(N,) float64 log densities under ``model`` (default: the fitted one): one forward
        pass per batch gives the tapped layer and the logits (so the predicted class)."""
        f, logits = self.tapped(self.model if model is None else model, x, [self.layer, LOGITS])
        return self.density(f, logits)[0]

    def density(self, f, logits, gradient=False):
        """(log p_c(f) (n,) float64, d log p_c / df (n, d) or None) for features f (n, d) and
        the logits (n, K) whose argmax is c."""
        xp = get_array_module(f)
        predicted = logits.argmax(axis=1)
        width = self.class_features[0].shape[1]
        if f.shape[1] != width:
            raise ValueError(f"KDEUncertaintyDetector was fitted on {width} features of "
                             f"{self.layer!r}, got {f.shape[1]}")
        log_p = xp.zeros(len(f), dtype=xp.float64)
        grad = xp.zeros(f.shape, dtype=xp.float64) if gradient else None
        for c, points in enumerate(self.class_points(xp)):
            members = xp.nonzero(predicted == c)[0]
            if len(members):
                log_p_c, grad_c = kde_log_density(f[members], points, self.bandwidth, gradient)
                log_p[members] = log_p_c
                if gradient:
                    grad[members] = grad_c
        return log_p, grad

    def log_densities(self, x):
        """(N,) float64: log KDE density of each image's features under its predicted class."""
        self.check_fitted()
        self.check_images(x)
        return self.densities(x)

    def uncertainties(self, x, model=None):
        """(N,) float64: U = sum_k var_t p_tk over ``n_samples`` dropout passes, seeded."""
        z = mc_passes(self.model if model is None else model, x, self.n_samples, self.seed)
        xp = get_array_module(z)
        return softmax(z.astype(xp.float64)).var(axis=0).sum(axis=1)

    def raw_features(self, model, x):
        """(N, 2) float64 on the host: [log density, uncertainty] of x under ``model``."""
        return np.stack([to_numpy(self.densities(x, model)),
                         to_numpy(self.uncertainties(x, model))], axis=1)

    def features(self, x):
        """(log_density (N,), uncertainty (N,)), both float64: the two unstandardised features."""
        self.check_fitted()
        self.check_images(x)
        return self.densities(x), self.uncertainties(x)

    # ---------------------------------------------- fit

    def noisy_like(self, x, x_adv):
        """x + Gaussian noise with each image's L2 norm equal to |x_adv - x|, clipped to [0, 1]."""
        xp = get_array_module(x)
        axes = tuple(range(1, x.ndim))
        noise = new_rng(self.seed, xp).standard_normal(x.shape).astype(x.dtype)
        target = xp.sqrt(((x_adv - x) ** 2).sum(axis=axes, keepdims=True))
        norm = xp.maximum(xp.sqrt((noise ** 2).sum(axis=axes, keepdims=True)), 1e-12)
        return xp.clip(x + noise * (target / norm), 0, 1).astype(x.dtype)

    fit_call = "fit(model, x, y, x_adv, density_data=(x_train, y_train))"

    def fit(self, model, x, y, x_adv=None, *, density_data, x_noisy=None):
        """Per-class KDEs on ``density_data`` = (x_train, y_train), then the regression.

        x (N, C, H, W) clean, y (N,) its labels or None (checked, not used), x_adv (N, C, H, W)
        adversarial versions of x, x_noisy (N, C, H, W) or None (default: noise of the adversarial
        perturbation's L2 norm, module docstring). Every class of the model must appear in
        y_train. The defences' ``fit`` convention (``base.py``). Returns self.
        """
        self.check_fit_arguments(model, x_adv, needs_adv=True)
        self.check_images(x, model)
        if y is not None:
            check_labels(y, len(x))
        for name, other in (("x_adv", x_adv), ("x_noisy", x_noisy)):
            if other is not None and getattr(other, "shape", None) != x.shape:
                raise ValueError(f"{name} must have the shape of x, {tuple(x.shape)}, got "
                                 f"{getattr(other, 'shape', type(other).__name__)}")
        if not (isinstance(density_data, (tuple, list)) and len(density_data) == 2):
            raise ValueError("density_data must be (x_train, y_train)")
        x_train, y_train = density_data
        num_classes = model.logits(x[:1]).shape[1]
        self.check_images(x_train, model)
        if x_noisy is not None:
            self.check_images(x_noisy, model)
        check_labels(y_train, len(x_train), "y_train")
        y_train = to_numpy(y_train)
        seen = set(y_train.tolist())
        missing, unknown = sorted(set(range(num_classes)) - seen), sorted(seen - set(
            range(num_classes)))
        if missing or unknown:
            raise ValueError(f"density_data needs images of every class 0..{num_classes - 1} "
                             f"and no other label; missing classes: {missing}, other labels: "
                             f"{unknown}")
        train_features = to_numpy(self.tapped(model, x_train, [self.layer])[0]).astype(
            np.float64)
        self.class_features = [train_features[y_train == c] for c in range(num_classes)]
        self._on_device = {}
        if x_noisy is None:
            x_noisy = self.noisy_like(x, x_adv)
        negatives = np.concatenate([self.raw_features(model, x),
                                    self.raw_features(model, x_noisy)])
        positives = self.raw_features(model, x_adv)
        values = np.concatenate([negatives, positives])
        self.mean, std = values.mean(axis=0), values.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        labels = np.repeat([0, 1], [len(negatives), len(positives)])
        with warnings.catch_warnings():         # newer scikit-learns announce new defaults
            warnings.simplefilter("ignore", FutureWarning)
            self.regression = LogisticRegressionCV(scoring="accuracy").fit(
                standardise(values, self.mean, self.std), labels)
        self.coef = self.regression.coef_[0].astype(np.float64)
        self.intercept = float(self.regression.intercept_[0])
        self.model = model
        return self

    # ---------------------------------------------- the defence contract

    def decision_function(self, x):
        """(N,) float64: the regression's logit w_d v_d + w_u v_u + b."""
        return self.decision_from_features(*self.features(x))

    def decision_from_features(self, log_p, u):
        """The regression's logit from ``features``' two values (N,) each: to score images
        whose features are already at hand without running the MC passes again."""
        return (self.coef[0] * standardise(log_p, self.mean[0], self.std[0])
                + self.coef[1] * standardise(u, self.mean[1], self.std[1]) + self.intercept)

    def score(self, x):
        """(N,) float64 P(adversarial) = sigmoid(decision_function): higher = more adversarial."""
        xp = get_array_module(x)
        return 1 / (1 + xp.exp(-self.decision_function(x)))

    def predict(self, x):
        """(N,) int64: the model's label, or -1 where P(adversarial) > threshold."""
        score = self.score(x)
        xp = get_array_module(score)
        return xp.where(score > self.threshold, -1, self.model.predict(x)).astype(xp.int64)

    def score_gradient(self, x):
        """d decision_function / dx (like x, x's dtype) through the KDE term; the predicted
        class and the uncertainty held fixed (module docstring). Per batch, one forward pass
        (the tapped layer and the logits) and one backward pass of the network."""
        self.check_fitted()
        self.check_images(x)

        def batch(s):
            outputs, pullback = self.model.vjp(x[s], None, (self.layer, LOGITS))
            h = outputs[self.layer]
            _, grad_f = self.density(flat(h), outputs[LOGITS], gradient=True)
            w = (grad_f * (self.coef[0] / self.std[0])).reshape(h.shape).astype(h.dtype)
            return pullback({self.layer: w}).astype(x.dtype)

        return self.model.map_batches(len(x), batch)
