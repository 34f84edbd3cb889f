"""One-vs-all RBF support vector machines, fitted by scikit-learn and evaluated by hand.

The building block of Deep Neural Rejection (Sotgiu et al. 2019, arXiv 1910.00470) and of its
baseline NR (Melis et al. 2017): for each class k a
binary SVM "k against the rest" with the RBF kernel k(h, r) = exp(-gamma |h - r|^2), and its
raw decision value (no Platt scaling)

    s_k(h) = sum_i a_{k,i} exp(-gamma |h - r_i|^2) + b_k              h: (F,), s: (K,)

where r_i runs over the support vectors and a_{k,i} = y_{k,i} alpha_{k,i} are the signed dual
coefficients (0 where r_i is not a support vector of class k's machine). Its input gradient,
from d k(h, r)/dh = 2 gamma k(h, r) (r - h), pulled back with weights w (K,):

    d(sum_k w_k s_k)/dh = 2 gamma (c^T R - (sum_i c_i) h),   c_i = k(h, r_i) sum_k w_k a_{k,i}

Fitting happens on the host: one binary ``SVC(kernel="precomputed", C=C)`` per class on
y == k, all sharing one Gram matrix exp(-gamma D) (D the squared distances between the
training rows, computed once). That is the same dual problem as ``SVC(kernel="rbf")`` (its
support vectors and coefficients agree to ~1e-14; scikit-learn's ``SVC`` alone would be
one-vs-one inside), and lets cross-validation and DNR's folds reuse the Gram matrix instead of
recomputing kernel rows per class. The support vectors of all K machines are stacked into one
matrix R (S, F) (their union over the training rows) with coefficients A (S, K), so the decision
for a chunk of samples is one kernel block and one matrix product, computed in the array
module of the input (NumPy or CuPy) in float64, whatever the input's dtype: the squared
distances |h|^2 + |r|^2 - 2 h.r lose too many digits in float32 near a support vector.

Choices left open: no class weights (as the authors' code); labels must be 0 .. K-1 with every
class present; evaluation in chunks of at most ``CHUNK_ENTRIES`` kernel values.
"""

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from nnscratch.backend import get_array_module, to_numpy
from nnscratch.checks import check_integer, check_labels, check_real

CHUNK_ENTRIES = 2 ** 22        # kernel values per chunk of samples (32 MiB in float64)


def squared_distances(a, b, b_squared=None):
    """|a_i - b_j|^2 (m, n) for a (m, F), b (n, F), in their array module; clipped at 0."""
    xp = get_array_module(a)
    if b_squared is None:
        b_squared = (b * b).sum(axis=1)
    d = (a * a).sum(axis=1)[:, None] + b_squared[None, :] - 2 * (a @ b.T)
    return xp.maximum(d, 0)


def check_class_labels(y, n, what):
    """Host int64 labels (n,) covering 0 .. K-1 with every class present; returns (y, K)."""
    y = to_numpy(check_labels(y, n, f"{what}: labels"))
    if n and y.min() < 0:
        raise ValueError(f"{what}: labels must be >= 0, got {y.min()}")
    num_classes = int(y.max()) + 1 if n else 0
    if n < max(num_classes, 2):
        raise ValueError(f"{what}: {n} samples for {max(num_classes, 2)} classes; a one-vs-all "
                         "SVM needs at least one sample per class (and two classes)")
    missing = np.setdiff1d(np.arange(num_classes), y)
    if missing.size:
        raise ValueError(f"{what}: class {missing[0]} has no sample (labels must cover "
                         f"0 .. {num_classes - 1})")
    return y.astype(np.int64), num_classes


class RBFOneVsRest:
    """K binary RBF SVMs, class k against the rest (see the module docstring).

    fit(features (n, F), y (n,)) -> self        decision(h (N, F)) -> (N, K) float64
    decision_vjp(h, w (N, K)) -> (N, F) float64  decision_from_kernel(k_rows) -> (m, K)
    Fitted state, float64 on the host: ``support_vectors`` R (S, F), ``dual_coef`` A (S, K),
    ``intercept`` b (K,), ``support_index`` (S,) (rows of the fitting data that R holds).
    """

    def __init__(self, C=1.0, gamma=0.01):
        self.C = check_real(C, "RBFOneVsRest: C", positive=True)
        self.gamma = check_real(gamma, "RBFOneVsRest: gamma", positive=True)
        self.support_vectors = self.dual_coef = self.intercept = self.support_index = None
        self._on_device = {}

    def __repr__(self):
        return f"RBFOneVsRest(C={self.C:g}, gamma={self.gamma:g})"

    def kernel(self, a, b):
        """exp(-gamma |a_i - b_j|^2) (m, n) in a's array module."""
        xp = get_array_module(a)
        return xp.exp(-self.gamma * squared_distances(a, b))

    def fit(self, features, y, gram=None):
        """Fit the K machines on features (n, F) and labels y (n,) in 0 .. K-1.

        ``gram`` (n, n), optional: the kernel matrix ``self.kernel(features, features)`` when
        the caller already has it (cross-validation slices one matrix for every fold).
        Returns self.
        """
        features = to_numpy(features).astype(np.float64)
        if features.ndim != 2:
            raise ValueError(f"RBFOneVsRest.fit: features must be (n, F), got shape "
                             f"{features.shape}")
        y, num_classes = check_class_labels(y, len(features), "RBFOneVsRest.fit")
        gram = self.kernel(features, features) if gram is None else to_numpy(gram)
        if gram.shape != (len(features),) * 2:
            raise ValueError(f"RBFOneVsRest.fit: gram must be ({len(features)}, "
                             f"{len(features)}), got {gram.shape}")
        machines = [SVC(kernel="precomputed", C=self.C).fit(gram, (y == k).astype(np.int64))
                    for k in range(num_classes)]
        # decision_function of a binary SVC is dual_coef_ @ k + intercept_, > 0 for y == k
        support = np.unique(np.concatenate([m.support_ for m in machines]))
        coef = np.zeros((len(support), num_classes))
        for k, m in enumerate(machines):
            coef[np.searchsorted(support, m.support_), k] = m.dual_coef_[0]
        self.support_index, self.support_vectors = support, features[support]
        self.dual_coef = coef
        self.intercept = np.array([m.intercept_[0] for m in machines])
        self._on_device = {}
        return self

    def check_fitted(self):
        if self.dual_coef is None:
            raise RuntimeError("RBFOneVsRest is not fitted: call fit(features, y) first")

    STATE = ("support_index", "support_vectors", "dual_coef", "intercept")

    def state(self):
        """The fitted machines as plain arrays {name: array} (STATE), to be saved without
        pickle (a study stage's output) and given back to ``load_state``."""
        self.check_fitted()
        return {name: getattr(self, name) for name in self.STATE}

    def load_state(self, state):
        """Become the machines ``state()`` described (C and gamma are the constructor's).
        Returns self."""
        missing = [name for name in self.STATE if name not in state]
        if missing:
            raise ValueError(f"RBFOneVsRest.load_state: missing {missing}")
        for name in self.STATE:
            setattr(self, name, np.asarray(state[name]))
        self._on_device = {}
        return self

    @property
    def num_classes(self):
        self.check_fitted()
        return self.dual_coef.shape[1]

    def fitted_arrays(self, xp):
        """(R (S, F), |R|^2 (S,), A (S, K), b (K,)) as float64 arrays of module xp."""
        self.check_fitted()
        if xp not in self._on_device:
            r = self.support_vectors
            self._on_device[xp] = tuple(xp.asarray(a) for a in
                                        (r, (r * r).sum(axis=1), self.dual_coef, self.intercept))
        return self._on_device[xp]

    def checked(self, h):
        """h as float64 (N, F), refused unless its width is the fitted one."""
        self.check_fitted()
        width = self.support_vectors.shape[1]
        if h.ndim != 2 or h.shape[1] != width:
            raise ValueError(f"RBFOneVsRest was fitted on {width} features, got an array of "
                             f"shape {tuple(h.shape)}")
        return h.astype(get_array_module(h).float64, copy=False)

    def chunks(self, n):
        rows = max(1, CHUNK_ENTRIES // max(len(self.support_vectors), 1))
        return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]

    def kernel_rows(self, h, r, r_squared):
        xp = get_array_module(h)
        return xp.exp(-self.gamma * squared_distances(h, r, r_squared))

    def decision(self, h):
        """s (N, K) float64: s[n, k] = sum_i A[i, k] k(h_n, r_i) + b_k; h (N, F)."""
        h = self.checked(h)
        xp = get_array_module(h)
        r, r_squared, coef, intercept = self.fitted_arrays(xp)
        out = xp.empty((len(h), coef.shape[1]), dtype=xp.float64)
        for s in self.chunks(len(h)):
            out[s] = self.kernel_rows(h[s], r, r_squared) @ coef + intercept
        return out

    def decision_vjp(self, h, w):
        """d(sum_{n,k} w[n,k] s[n,k])/dh (N, F) float64; h (N, F), w (N, K).

        With c = k(h, R) * (w A^T) (N, S): 2 gamma (c R - (sum_i c_i) h)."""
        h = self.checked(h)
        xp = get_array_module(h)
        r, r_squared, coef, _ = self.fitted_arrays(xp)
        if w.shape != (len(h), coef.shape[1]):
            raise ValueError(f"w must be ({len(h)}, {coef.shape[1]}), got {tuple(w.shape)}")
        w = w.astype(xp.float64, copy=False)
        grad = xp.empty_like(h)
        for s in self.chunks(len(h)):
            c = self.kernel_rows(h[s], r, r_squared) * (w[s] @ coef.T)         # (n, S)
            grad[s] = 2 * self.gamma * (c @ r - c.sum(axis=1, keepdims=True) * h[s])
        return grad

    def decision_from_kernel(self, kernel_rows):
        """s (m, K) from the kernel values (m, n_fit) between m samples and the rows ``fit``
        was given (the same as ``decision`` on those samples, without recomputing them)."""
        self.check_fitted()
        return kernel_rows[:, self.support_index] @ self.dual_coef + self.intercept


def cross_validate_svm(features, y, grid, folds=3, seed=0):
    """Mean held-out accuracy of ``RBFOneVsRest(C, gamma)`` for every (C, gamma) of ``grid``.

    features (n, F), y (n,); grid: an iterable of (C, gamma) pairs; ``folds`` stratified
    folds, shuffled with ``seed`` (the same folds for every pair). A sample is classified by
    argmax_k s_k. Returns (best (C, gamma), {(C, gamma): mean accuracy}): the best is the
    highest mean accuracy, the first in ``grid`` order on a tie (list the authors' values
    first to keep them unless another does strictly better). Runs on the host; the squared
    distances are computed once and shared by every pair and fold.
    """
    features = to_numpy(features).astype(np.float64)
    if features.ndim != 2:
        raise ValueError(f"cross_validate_svm: features must be (n, F), got {features.shape}")
    y, _ = check_class_labels(y, len(features), "cross_validate_svm")
    folds = check_integer(folds, "cross_validate_svm: folds", minimum=2)
    grid = [(float(c), float(g)) for c, g in grid]
    if not grid:
        raise ValueError("cross_validate_svm: grid is empty")
    if np.bincount(y).min() < folds:
        raise ValueError(f"cross_validate_svm: every class needs at least folds={folds} "
                         f"samples, the smallest has {np.bincount(y).min()}")
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, y))
    distances = squared_distances(features, features)
    table = {}
    for c, gamma in grid:
        svm, gram = RBFOneVsRest(c, gamma), np.exp(-gamma * distances)
        accuracies = []
        for train, test in splits:
            svm.fit(features[train], y[train], gram=gram[np.ix_(train, train)])
            scores = svm.decision_from_kernel(gram[np.ix_(test, train)])
            accuracies.append(float((scores.argmax(axis=1) == y[test]).mean()))
        table[(c, gamma)] = float(np.mean(accuracies))
    best = max(table, key=lambda key: (table[key], -grid.index(key)))
    return best, table
