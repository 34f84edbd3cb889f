"""Deep Neural Rejection (Sotgiu, Demontis, Melis, Biggio, Fumera, Feng & Roli 2019, "Deep
Neural Rejection against Adversarial Examples", arXiv 1910.00470) and its single-layer
baseline NR (Melis et al. 2017, "Is deep learning safe for robot vision? Adversarial
examples against the iCub humanoid"); settings as the DNR paper and its authors give them.

DNR, on a trained network and the flattened activations h_l(x) of L tapped layers:

    u_l(x) = S_l(h_l(x))              (K,)   S_l a one-vs-all RBF SVM per layer (``svm.py``)
    s(x) = S_comb([u_1 .. u_L](x))    (K,)   the combiner, an RBF SVM on the L*K layer scores
    predict(x) = argmax_k s_k(x), or -1 (rejected) when max_k s_k(x) < theta
    score(x) = -max_k s_k(x)                 higher = more likely rejected

The combiner is fitted on out-of-fold layer scores: the training set is split into ``folds``
stratified folds (shuffled with ``seed``); each fold's scores come from layer SVMs fitted on
the other folds, so the combiner never sees a score of a sample its layer SVM was fitted on.
The layer SVMs are then refitted on the whole training set. theta is the ``reject_rate``
quantile of max_k s_k on clean validation images (``rejection.threshold_for_rate`` applied to
-max_k s_k). NR is the same with one tapped layer, no combiner: s = S_1(h_1(x)). The ``fit``
convention is the defences' (``base.py``), x_val keyword-only.

The exact gradient, by the chain rule: for upstream weights g (N, K) on s, the combiner's
``decision_vjp`` gives g_u (N, L*K), split into the L blocks of K; each layer SVM's
``decision_vjp`` turns its block into g_h_l; the network pulls all L back to x at once (its
multi-tap ``batch_vjp``, eval mode): one forward and one backward pass of the network per
gradient. ``score_gradient`` takes g = -onehot(argmax_k s_k): the argmax class is held fixed
(the gradient where it is unique).

Choices left open, and ours:
- taps: ``dnr_cnn``'s last three hidden representations, largest first: "flatten_1" (the 3,136
  flattened conv features; the flatten after dropout_2 equals, in eval mode, the flattened
  pooled output), "relu_5", "relu_6" (the two dense layers of 200), never the logits; any layer
  names of the model may be given. NR taps "relu_6".
- SVM settings: the authors' (C, gamma) per layer, the combiner's (0.1, 1.0), NR's (1, 1e-2);
  ``svm.cross_validate_svm`` re-chooses them on other layers.
- folds: stratified (scikit-learn's ``StratifiedKFold``), so every class needs at least
  ``folds`` training samples; every fold's training part then holds every class.
- theta from x_val only (keyword-only, required): the authors set it on clean test samples.
- the scores are computed in float64 and returned in x's dtype, through ``as_model()``, so
  ``predict``, ``score`` and the threshold all see the same numbers.
"""

import math

import numpy as np
from sklearn.model_selection import StratifiedKFold

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.defenses.base import Defence, flat
from nnscratch.defenses.rejection import RejectingModel, threshold_for_rate
from nnscratch.defenses.svm import RBFOneVsRest
from nnscratch.checks import check_integer, check_labels, check_real, check_seed


def check_svm_setting(pair, what):
    """(C, gamma) as two positive floats."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise ValueError(f"{what} must be a pair (C, gamma), got {pair!r}")
    return (check_real(pair[0], f"{what}: C", positive=True),
            check_real(pair[1], f"{what}: gamma", positive=True))


class SVMRejection(Defence):
    """What DNR and NR share: taps, layer SVMs, an optional combiner, the reject threshold and
    the defence contract. Fitted state: ``model``, ``svms`` (one ``RBFOneVsRest`` per tap),
    ``combiner_svm`` (None without a combiner), ``theta`` (float), ``num_classes``.
    """

    def __init__(self, layers, layer_svms, combiner, folds, reject_rate, seed):
        name = type(self).__name__
        if (isinstance(layers, str) or not isinstance(layers, (tuple, list)) or not layers
                or not all(isinstance(layer, str) for layer in layers)):
            raise TypeError(f"{name}: layers must be a non-empty sequence of layer names, "
                            f"got {layers!r}")
        if not isinstance(layer_svms, (tuple, list)) or len(layer_svms) != len(layers):
            raise ValueError(f"{name}: layer_svms must give one (C, gamma) per layer "
                             f"({len(layers)}), got {layer_svms!r}")
        self.layers = tuple(layers)
        self.layer_svms = tuple(check_svm_setting(p, f"{name}: layer_svms[{i}]")
                                for i, p in enumerate(layer_svms))
        self.combiner = None if combiner is None else check_svm_setting(combiner,
                                                                        f"{name}: combiner")
        self.folds = None if folds is None else check_integer(folds, f"{name}: folds", minimum=2)
        self.reject_rate = check_real(reject_rate, f"{name}: reject_rate", below=1)
        self.seed = check_seed(seed, f"{name}: seed")
        self.svms = self.combiner_svm = self.theta = self.num_classes = None

    # ---------------------------------------------- fit

    def check_training_labels(self, model, x, y):
        """Host labels (N,) and K (the model's logit count); every class needs at least
        ``folds`` samples (one without a combiner)."""
        num_classes = model.logits(x[:1]).shape[1]                  # checks x
        check_labels(y, len(x))
        y = to_numpy(y).astype(np.int64)
        name, need = type(self).__name__, self.folds or 1
        if len(y) < num_classes:
            raise ValueError(f"{name}.fit: {len(y)} samples for {num_classes} classes; every "
                             f"class needs at least {need}")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name}.fit: labels must be in [0, {num_classes}), got "
                             f"{y.min()} .. {y.max()}")
        counts = np.bincount(y, minlength=num_classes)
        if counts.min() < need:
            c = int(counts.argmin())
            raise ValueError(f"{name}.fit: class {c} has {counts[c]} samples, fewer than "
                             f"{need}" + (f" (folds={self.folds})" if self.folds else ""))
        return y, num_classes

    def fit(self, model, x, y, x_adv=None, *, x_val):
        """Fit the SVMs on the clean training images x (N, C, H, W), labels y (N,) in
        [0, K), and theta on the clean validation images x_val. Returns self."""
        self.check_fit_arguments(model, x_adv)
        self.check_images(x_val, model)                             # before the long part
        self.check_images(x, model)
        if not len(x_val):
            raise ValueError(f"{type(self).__name__}.fit: x_val is empty; theta needs clean "
                             "validation images")
        y, num_classes = self.check_training_labels(model, x, y)
        features = [to_numpy(h).astype(np.float64) for h in self.tapped(model, x, self.layers)]
        width = num_classes * len(self.layers)
        splits = (list(StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
                       .split(np.zeros(len(y)), y)) if self.combiner else [])
        out_of_fold = np.empty((len(y), width))                     # the combiner's inputs
        svms = []
        for i, (h, setting) in enumerate(zip(features, self.layer_svms)):
            svm = RBFOneVsRest(*setting)
            gram = svm.kernel(h, h)                                 # shared by every fold
            block = slice(i * num_classes, (i + 1) * num_classes)
            for train, test in splits:
                fold_svm = RBFOneVsRest(*setting).fit(h[train], y[train],
                                                      gram=gram[np.ix_(train, train)])
                out_of_fold[test, block] = fold_svm.decision_from_kernel(gram[np.ix_(test, train)])
            svms.append(svm.fit(h, y, gram=gram))
        self.combiner_svm = RBFOneVsRest(*self.combiner).fit(out_of_fold, y) if splits else None
        self.svms, self.num_classes = svms, num_classes
        self.model, self.theta = model, -math.inf                   # no rejection while set
        self.theta = -threshold_for_rate(self.score(x_val), self.reject_rate)
        return self

    def state(self):
        """The fitted SVMs and theta as {name: array}: "layer{i}_{array}" per tapped layer,
        "combiner_{array}" (DNR), "theta". Saved without pickle, given back to ``load_state``."""
        self.check_fitted()
        arrays = {"theta": np.array(self.theta)}
        machines = [(f"layer{i}", svm) for i, svm in enumerate(self.svms)]
        if self.combiner_svm is not None:
            machines.append(("combiner", self.combiner_svm))
        for prefix, svm in machines:
            arrays.update({f"{prefix}_{name}": a for name, a in svm.state().items()})
        return arrays

    def load_state(self, model, state):
        """The defence as fitted on ``model`` when ``state()`` was taken, without fitting
        again (this object's layers and SVM settings must be those of the saved one).
        Returns self."""
        def machine(prefix, setting):
            return RBFOneVsRest(*setting).load_state(
                {name: state[f"{prefix}_{name}"] for name in RBFOneVsRest.STATE
                 if f"{prefix}_{name}" in state})

        self.svms = [machine(f"layer{i}", setting) for i, setting in enumerate(self.layer_svms)]
        self.combiner_svm = machine("combiner", self.combiner) if self.combiner else None
        self.model, self.theta = model, float(state["theta"])
        self.num_classes = self.svms[0].num_classes
        return self

    fit_call = "fit(model, x, y, x_val=...)"

    # ---------------------------------------------- one batch

    def scores_from(self, taps):
        """(s (n, K) float64, pullback) from the network's activations {layer: (n, ...)} of one
        batch; pullback(g (n, K)) = {layer: d(sum g * s)/d activation}, each shaped and typed
        like its activation (see the module docstring)."""
        xp, k = get_array_module(taps[self.layers[0]]), self.num_classes
        h = [flat(taps[name]).astype(xp.float64) for name in self.layers]
        layer_scores = [svm.decision(h_l) for svm, h_l in zip(self.svms, h)]
        if self.combiner_svm is None:
            u, scores = None, layer_scores[0]
        else:
            u = xp.concatenate(layer_scores, axis=1)                # (n, L*K)
            scores = self.combiner_svm.decision(u)

        def pullback(g):
            g = g.astype(xp.float64)
            g_u = g if u is None else self.combiner_svm.decision_vjp(u, g)
            return {name: svm.decision_vjp(h_l, g_u[:, i * k:(i + 1) * k])
                    .reshape(taps[name].shape).astype(taps[name].dtype)
                    for i, (name, svm, h_l) in enumerate(zip(self.layers, self.svms, h))}

        return scores, pullback

    def batch_scores_vjp(self, x):
        """(s (n, K) float64, pullback) for one batch x: one forward pass of the network for
        every tap; pullback(g (n, K)) = d(sum g * s)/dx like x, one backward pass, valid until
        the network's next forward pass."""
        taps, network_pullback = self.model.vjp(x, None, self.layers)
        scores, scores_pullback = self.scores_from(taps)
        return scores, lambda g: network_pullback(scores_pullback(g))

    # ---------------------------------------------- the defence contract

    def as_model(self):
        """The model interface on K + 1 classes, [s_1 .. s_K, theta] (a ``RejectingModel``)."""
        return RejectingModel(self)

    def scores(self, x):
        """s(x) (N, K) in x's dtype (the combined scores for DNR, the layer SVM's for NR)."""
        self.check_fitted()
        self.check_images(x)
        return self.model.map_batches(len(x), lambda s: self.scores_from(
            self.model.batch_features(x[s], self.layers))[0].astype(x.dtype))

    def score(self, x):
        """-max_k s_k(x) (N,): higher = more likely rejected."""
        return -self.scores(x).max(axis=1)

    def predict(self, x):
        """(N,) int64: argmax_k s_k(x), or -1 where max_k s_k(x) < theta."""
        self.check_fitted()
        self.check_images(x)
        z = self.as_model().logits(x)
        xp = get_array_module(z)
        label = z.argmax(axis=1)
        return xp.where(label == self.num_classes, -1, label).astype(xp.int64)

    def scores_vjp(self, x, w):
        """d(sum_{n,k} w[n,k] s_k(x_n))/dx (like x); w (N, K)."""
        self.check_fitted()
        if not hasattr(w, "shape") or tuple(w.shape) != (len(x), self.num_classes):
            raise ValueError(f"w must have shape ({len(x)}, {self.num_classes}), got "
                             f"{getattr(w, 'shape', type(w).__name__)}")
        self.check_images(x)
        return self.model.map_batches(len(x), lambda s: self.batch_scores_vjp(x[s])[1](w[s]))

    def score_gradient(self, x):
        """d score/dx = -d s_c/dx with c = argmax_k s_k(x) held fixed (like x): one forward
        and one backward pass of the network per batch."""
        self.check_fitted()
        self.check_images(x)

        def batch(s):
            scores, pullback = self.batch_scores_vjp(x[s])
            scores = scores.astype(x.dtype)                         # as ``scores`` gives them
            xp = get_array_module(scores)
            return pullback(-(xp.arange(scores.shape[1])[None, :]
                              == scores.argmax(axis=1)[:, None]).astype(xp.float64))

        return self.model.map_batches(len(x), batch)


class DeepNeuralRejection(SVMRejection):
    """DNR (see the module docstring): ``layers`` tapped, one RBF SVM per layer with
    ``layer_svms`` = ((C, gamma), ...) in the same order, a combiner RBF SVM (C, gamma) fitted
    on ``folds``-fold out-of-fold layer scores (folds shuffled with ``seed``), and theta
    rejecting ``reject_rate`` of the clean validation images."""

    def __init__(self, layers=("flatten_1", "relu_5", "relu_6"),
                 layer_svms=((10.0, 1e-3), (10.0, 1e-2), (1.0, 1e-2)), combiner=(0.1, 1.0),
                 folds=5, reject_rate=0.1, seed=0):
        if combiner is None:
            raise ValueError("DeepNeuralRejection needs a combiner (C, gamma); NeuralRejection "
                             "is the one without")
        super().__init__(layers, layer_svms, combiner, folds, reject_rate, seed)

    def __repr__(self):
        return (f"DeepNeuralRejection(layers={self.layers}, layer_svms={self.layer_svms}, "
                f"combiner={self.combiner}, folds={self.folds}, "
                f"reject_rate={self.reject_rate}, seed={self.seed})")


class NeuralRejection(SVMRejection):
    """NR (Melis et al. 2017): one one-vs-all RBF SVM (C, gamma) on layer ``layer``, rejecting
    when max_k s_k(x) < theta (theta from ``reject_rate`` on the clean validation images)."""

    def __init__(self, layer="relu_6", C=1.0, gamma=1e-2, reject_rate=0.1):
        if not isinstance(layer, str):
            raise TypeError(f"NeuralRejection: layer must be a layer name, got {layer!r}")
        super().__init__((layer,), ((C, gamma),), None, None, reject_rate, 0)
        self.layer, (self.C, self.gamma) = layer, self.layer_svms[0]

    def __repr__(self):
        return (f"NeuralRejection(layer={self.layer!r}, C={self.C:g}, gamma={self.gamma:g}, "
                f"reject_rate={self.reject_rate})")
