"""OpenMax (Bendale & Boult 2016, "Towards Open Set Deep Networks"), as Günther, Rozsa & Boult
(2017, section 3) run it on LeNet/MNIST: reject images whose activations lie too far from
every class they could be.

Fit, from the correctly classified training images of each class c:

    m_c = mean of their activation vectors h(x) at layer ``layer``       (MAV, (F,))
    d_c(x) = dist(h(x), m_c)                                             cosine or eucos
    Weibull_c = Weibull fitted to the ``tailsize`` largest d_c (``weibull.fit_tail``)

Recalibrate the logits v (N, K) (LeNet's ip2) of an image: rank the classes by logit; the i-th
largest (i = 1 .. alpha) gets the weight w = (alpha - i + 1) / alpha, the others w = 0 (the
weights of OSDN's released code), and

    v'_c = v_c (1 - w_c CDF_c(d_c))          u = sum_c (v_c - v'_c) = sum_c v_c w_c CDF_c(d_c)
    P = softmax([v'_1 .. v'_K, u])           (N, K + 1); class K (the last) is "unknown"

``predict`` gives argmax P, with -1 for unknown; ``score`` gives P(unknown) (higher = more
likely rejected). ``threshold`` (default 0: plain argmax) also rejects images whose largest
probability is below it (Bendale & Boult's uncertainty threshold).

Choices where the paper is silent:
- ``layer="relu_1"``: Günther et al. tap ip1, LeNet's 500-unit layer. Caffe's LeNet runs its
  ReLU in place on ip1, so the ip1 blob read after a forward pass holds ReLU(ip1); in
  ``zoo.lenet`` the 500-unit Dense layer is "dense_1" and its ReLU "relu_1". Any layer name of
  the model may be given (activations are flattened to (N, F)).
- distance: "cosine" (Günther et al.: 1 - h.m / (|h| |m|)) or "eucos" (OSDN's default:
  |h - m| / 200 + cosine). A zero activation vector has cosine distance 1 (norms are floored).
- The Weibull tail fit follows libMR's FitHigh, translation included (see ``weibull.py``).
- A class with fewer than ``tailsize`` correctly classified training images is an error (libMR's
  Python wrapper refuses such a fit too): lower ``tailsize`` or fit on more images.

``OpenMax.as_model()`` is an ``OpenMaxModel``: the model interface with logits log P (N, K + 1)
and their exact gradient (through the softmax, the recalibration, the Weibull CDFs, the
distances, and the network's pullbacks of the logits and of the tapped layer), so that attacks
can aim at OpenMax's acceptance. The class ranking is piecewise constant: its derivative is 0
(away from ties between logits, where the gradient is not defined).
"""

import math

import numpy as np

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.defenses.base import Defence
from nnscratch.defenses.weibull import fit_tail, weibull_cdf_and_pdf
from nnscratch.defenses.wrappers import EvalModeHead
from nnscratch.checks import check_choice, check_integer, check_labels, check_real
from nnscratch.model import LOGITS
from nnscratch.ops import log_softmax

NORM_FLOOR = 1e-12                 # keeps cosine and Euclidean distances finite at zero norms
EUCLIDEAN_SCALE = 1 / 200          # OSDN's eucos: |h - m| / 200 + cosine distance


def cosine_distances(h, mavs):
    """d[n, c] = 1 - cos(h_n, m_c) for h (n, F), mavs (K, F); returns (d (n, K), pullback),
    pullback(a) = sum_c a[:, c] dd_c/dh = -(a @ m_unit) / |h| + (sum_c a_c cos_c) h / |h|^2."""
    xp = get_array_module(h)
    h_norm = xp.maximum(xp.sqrt((h * h).sum(axis=1, keepdims=True)), NORM_FLOOR)     # (n, 1)
    m_norm = xp.maximum(xp.sqrt((mavs * mavs).sum(axis=1, keepdims=True)), NORM_FLOOR)
    m_unit = mavs / m_norm                                                            # (K, F)
    cos = (h / h_norm) @ m_unit.T                                                     # (n, K)

    def pullback(a):
        return -(a @ m_unit) / h_norm + (a * cos).sum(axis=1, keepdims=True) * h / h_norm ** 2

    return 1 - cos, pullback


def eucos_distances(h, mavs):
    """d[n, c] = |h_n - m_c| / 200 + 1 - cos(h_n, m_c); returns (d (n, K), pullback)."""
    xp = get_array_module(h)
    diff = h[:, None, :] - mavs[None, :, :]                                           # (n, K, F)
    euclidean = xp.sqrt((diff * diff).sum(axis=2))                                    # (n, K)
    cosine, cosine_pullback = cosine_distances(h, mavs)

    def pullback(a):
        unit_diff_weight = a * EUCLIDEAN_SCALE / xp.maximum(euclidean, NORM_FLOOR)    # (n, K)
        return (unit_diff_weight[:, :, None] * diff).sum(axis=1) + cosine_pullback(a)

    return euclidean * EUCLIDEAN_SCALE + cosine, pullback


DISTANCES = {"cosine": cosine_distances, "eucos": eucos_distances}


class OpenMax(Defence):
    """OpenMax over a model's logits and one of its layers (see the module docstring).

    fit(model, x, y) -> self       predict(x) -> (N,) label or -1      score(x) -> (N,) P(unknown)
    predict_proba(x) -> (N, K + 1)      as_model() -> OpenMaxModel
    Fitted state: ``model`` (the one given to ``fit``, which predict and score then use),
    ``mavs`` (K, F) and ``tails`` (K ``WeibullTail``), float64 on the host.
    """

    def __init__(self, layer="relu_1", tailsize=200, alpha=2, distance="cosine",
                 translation=10000.0, threshold=0.0):
        if not isinstance(layer, str):
            raise TypeError(f"OpenMax: layer must be a layer name, got {layer!r}")
        self.layer = layer
        self.distance = check_choice(distance, "OpenMax: distance", DISTANCES)
        self.tailsize = check_integer(tailsize, "OpenMax: tailsize", minimum=2)
        self.alpha = check_integer(alpha, "OpenMax: alpha")
        self.translation = (None if translation is None else
                            check_real(translation, "OpenMax: translation", positive=True))
        self.threshold = check_real(threshold, "OpenMax: threshold", below=1)
        self.mavs = self.tails = None
        self._on_device = {}                 # array module -> fitted arrays there

    def __repr__(self):
        return (f"OpenMax(layer={self.layer!r}, tailsize={self.tailsize}, alpha={self.alpha}, "
                f"distance={self.distance!r}, translation={self.translation}, "
                f"threshold={self.threshold})")

    # ---------------------------------------------- fit

    def fit(self, model, x, y, x_adv=None):
        """MAVs and Weibull tails from the images of (x, y) that ``model`` classifies correctly.

        x: (N, ...) images, y: (N,) int labels in [0, K). ``x_adv`` is refused: OpenMax learns
        from clean data only (the defences' ``fit`` convention, ``base.py``). Returns self.
        """
        self.check_fit_arguments(model, x_adv)
        self.check_images(x, model)
        logits = model.logits(x)
        check_labels(y, len(x))
        num_classes = logits.shape[1]
        if self.alpha > num_classes:
            raise ValueError(f"OpenMax: alpha={self.alpha} exceeds the number of classes "
                             f"{num_classes}")
        y = to_numpy(y)
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"labels must be in [0, {num_classes}), got {y.min()} .. {y.max()}")
        correct = to_numpy(logits.argmax(axis=1)) == y
        h = to_numpy(self.tapped(model, x, [self.layer])[0])      # (N, F)
        mavs, tails = [], []
        for c in range(num_classes):
            members = h[correct & (y == c)].astype(np.float64)     # (n_c, F)
            if len(members) < self.tailsize:
                raise ValueError(
                    f"OpenMax.fit: class {c} has {len(members)} correctly classified images, "
                    f"fewer than tailsize={self.tailsize}; lower tailsize or fit on more images")
            mav = members.mean(axis=0)
            d, _ = DISTANCES[self.distance](members, mav[None])    # (n_c, 1)
            mavs.append(mav)
            tails.append(fit_tail(d[:, 0], self.tailsize, self.translation))
        self.model, self.mavs, self.tails = model, np.stack(mavs), tails
        self._on_device = {}
        return self

    def fitted_arrays(self, xp):
        """(mavs (K, F), shape (K,), scale (K,), shift (K,)) as float64 arrays of module xp."""
        if xp not in self._on_device:
            columns = [[getattr(t, key) for t in self.tails] for key in ("shape", "scale", "shift")]
            self._on_device[xp] = tuple(xp.asarray(np.asarray(a, dtype=np.float64))
                                        for a in [self.mavs] + columns)
        return self._on_device[xp]

    # ---------------------------------------------- recalibration

    def recalibrate(self, logits, activations):
        """OpenMax scores s = [v', u] (n, K + 1), float64, and their pullback
        g (n, K + 1) -> (dL/dlogits like ``logits``, dL/dactivations like ``activations``)."""
        xp = get_array_module(logits)
        mavs, shape, scale, shift = self.fitted_arrays(xp)
        v = logits.astype(xp.float64)                                        # (n, K)
        width = math.prod(activations.shape[1:])
        h = activations.reshape(len(v), width).astype(xp.float64)           # (n, F)
        if h.shape[1] != mavs.shape[1] or v.shape[1] != mavs.shape[0]:
            raise ValueError(f"OpenMax was fitted on {mavs.shape[0]} classes and {mavs.shape[1]} "
                             f"features, got {v.shape[1]} and {h.shape[1]}")
        d, distance_pullback = DISTANCES[self.distance](h, mavs)            # (n, K)
        cdf, pdf = weibull_cdf_and_pdf(d, shape, scale, shift)              # (n, K)
        rank = xp.argsort(xp.argsort(-v, axis=1), axis=1)                    # 0 = largest logit
        w = xp.maximum(self.alpha - rank, 0) / self.alpha                    # (alpha-i+1)/alpha
        keep = 1 - w * cdf
        unknown = (v * w * cdf).sum(axis=1, keepdims=True)                   # (n, 1)
        scores = xp.concatenate([v * keep, unknown], axis=1)

        def pullback(g):
            g_known, g_unknown = g[:, :-1], g[:, -1:]
            grad_v = g_known * keep + g_unknown * w * cdf
            grad_cdf = v * w * (g_unknown - g_known)
            grad_h = distance_pullback(grad_cdf * pdf)
            return (grad_v.astype(logits.dtype),
                    grad_h.reshape(activations.shape).astype(activations.dtype))

        return scores, pullback

    # ---------------------------------------------- the defence contract

    def as_model(self):
        """The model interface on OpenMax's K + 1 classes (an ``OpenMaxModel``)."""
        return OpenMaxModel(self)

    def predict_proba(self, x):
        """OpenMax probabilities (N, K + 1), x's dtype; the last column is P(unknown)."""
        self.check_fitted()
        self.check_images(x)
        return self.as_model().predict_proba(x)

    def score(self, x):
        """P(unknown) (N,): higher = more likely rejected."""
        return self.predict_proba(x)[:, -1]

    def predict(self, x):
        """Labels (N,) int64: argmax of the K + 1 probabilities, -1 where that is "unknown"
        or (with ``threshold`` > 0) where the largest probability is below the threshold."""
        proba = self.predict_proba(x)
        xp = get_array_module(proba)
        label = proba.argmax(axis=1)
        rejected = (label == proba.shape[1] - 1) | (proba.max(axis=1) < self.threshold)
        return xp.where(rejected, -1, label).astype(xp.int64)


class OpenMaxModel(EvalModeHead):
    """``openmax``'s network with OpenMax on top: logits log P (N, K + 1), class K = unknown.

    The gradient of the logits is exact (see the module docstring): one forward pass of the
    network gives its logits and the tapped layer, one backward pass takes both gradients
    (``EvalModeHead``). Feature taps are the network's own; no dropout mode: the MAVs and tails
    describe the network in eval mode.
    """

    def __init__(self, openmax):
        if not isinstance(openmax, OpenMax):
            raise TypeError(f"OpenMaxModel takes a fitted OpenMax, got {type(openmax).__name__}")
        openmax.check_fitted()
        super().__init__(openmax.model)
        self.openmax = openmax
        self.head_taps = (LOGITS, openmax.layer)

    def head(self, outputs, x):
        """log P (n, K + 1) in x's dtype from the network's logits and tapped layer, and the
        pullback g -> {LOGITS: dL/dlogits, layer: dL/dactivation}."""
        xp, layer = get_array_module(x), self.openmax.layer
        scores, recalibration_pullback = self.openmax.recalibrate(outputs[LOGITS], outputs[layer])
        log_p = log_softmax(scores)                                         # (n, K + 1)

        def pullback(g):
            g = g.astype(xp.float64)
            grad_scores = g - xp.exp(log_p) * g.sum(axis=1, keepdims=True)   # log-softmax
            grad_logits, grad_activations = recalibration_pullback(grad_scores)
            return {LOGITS: grad_logits, layer: grad_activations}

        return log_p.astype(x.dtype), pullback
