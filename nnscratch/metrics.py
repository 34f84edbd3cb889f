"""Metrics, host-side on NumPy arrays: classification, attack outcomes, SSIM and PASS.

Every function takes NumPy arrays, or CuPy arrays, which it copies to the host first
(``backend.to_numpy``); images are (N, C, H, W) in [0, 1]. The perturbation norms live with the
attacks (``nnscratch.attacks.base.perturbation_norms``, in ``AttackResult.norms``), which this
module, a layer above them, does not import.
"""

import math

import numpy as np
from scipy import ndimage

from nnscratch.backend import to_numpy


def accuracy(y_true, y_pred):
    """Fraction of predictions equal to the labels (nan for an empty set)."""
    y_true, y_pred = to_numpy(y_true), to_numpy(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def confusion_matrix(y_true, y_pred, num_classes):
    """counts[i, j] = number of samples of true class i predicted as class j: (K, K) int64."""
    pairs = np.asarray(y_true, dtype=np.int64) * num_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(pairs, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def precision_recall_f1(y_true, y_pred, num_classes):
    """Per-class precision TP / (TP + FP), recall TP / (TP + FN) and their harmonic mean F1.

    Returns three (K,) float arrays; a class never predicted (or never present) gets 0 where
    the ratio is 0/0, as scikit-learn's ``zero_division=0`` does.
    """
    counts = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(counts).astype(np.float64)
    predicted, actual = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return precision, recall, f1


def classification_report(y_true, y_pred, num_classes):
    """Accuracy, per-class precision/recall/F1 and the confusion matrix, as a JSON-ready dict."""
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, num_classes)
    return {"accuracy": accuracy(y_true, y_pred), "n": int(len(y_true)),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "macro_f1": float(f1.mean()),
            "confusion_matrix": confusion_matrix(y_true, y_pred, num_classes).tolist()}


# ------------------------------------------------------------------------------ attack outcomes

def success_rate(success, where=None):
    """Fraction of attacks that succeeded: mean(success[where]), nan when nothing is counted.

    success: (N,) bool, ``AttackResult.success``; where: optional (N,) bool, the images to count
    (e.g. those the model classified correctly before the attack, as some papers do)."""
    success = to_numpy(success).astype(bool)
    if where is not None:
        where = to_numpy(where).astype(bool)
        if where.shape != success.shape:
            raise ValueError(f"where has shape {where.shape}, success {success.shape}")
        success = success[where]
    return float(success.mean()) if success.size else math.nan


def accuracy_under_attack(y_true, y_pred_adv):
    """Accuracy of the model on the adversarial images: mean(y_pred_adv == y_true).

    y_true: (N,) labels of the clean images; y_pred_adv: (N,) ``model.predict(result.x_adv)``.
    An image on which the attack failed counts as correct only if its prediction is."""
    y_true, y_pred_adv = to_numpy(y_true), to_numpy(y_pred_adv)
    if y_true.shape != y_pred_adv.shape:
        raise ValueError(f"y_true has shape {y_true.shape}, y_pred_adv {y_pred_adv.shape}")
    return accuracy(y_true, y_pred_adv)


def attack_report(y_true, y_pred_clean, y_pred_adv, success, norms, pass_scores=None):
    """One attack's outcome as a JSON-ready dict: clean accuracy, accuracy under attack, success
    rate, and the mean of each norm (``AttackResult.norms``) and of PASS over the successful
    images (as Günther et al. average PASS over the successful cases; nan when none is)."""
    success = to_numpy(success).astype(bool)
    report = {"n": int(len(success)), "clean_accuracy": accuracy(y_true, y_pred_clean),
              "accuracy_under_attack": accuracy_under_attack(y_true, y_pred_adv),
              "success_rate": success_rate(success)}
    extra = dict(norms, **({} if pass_scores is None else {"pass": pass_scores}))
    for name, values in extra.items():
        chosen = to_numpy(values)[success]
        report[f"mean_{name}"] = float(chosen.mean()) if chosen.size else math.nan
    return report


# ------------------------------------------------------------------------------------ SSIM

SSIM_SIGMA, SSIM_TRUNCATE = 1.5, 3.5       # an 11-tap Gaussian window (radius 5), Wang et al.
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _images(a, b, data_range=1.0):
    """a, b as float64 (N, C, H, W) host arrays of one shape, with values in [0, data_range]."""
    a, b = (np.asarray(to_numpy(v), dtype=np.float64) for v in (a, b))
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"expected two (N, C, H, W) arrays of one shape, got {a.shape} and "
                         f"{b.shape}")
    for name, v in (("first", a), ("second", b)):
        if v.size and not (np.all(np.isfinite(v)) and v.min() >= 0 and v.max() <= data_range):
            raise ValueError(f"the {name} images must lie in [0, {data_range}], found values "
                             f"in [{v.min()}, {v.max()}]")
    return a, b


def ssim(a, b, data_range=1.0, win_size=None):
    """Structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) of each image pair: (N,).

    a, b: (N, C, H, W) in [0, data_range]. At every pixel, with Gaussian-weighted local means
    mu, variances s^2 and covariance s_ab (weights: sigma 1.5, 11 taps, image borders reflected)::

        SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))
        C1 = (0.01 data_range)^2, C2 = (0.03 data_range)^2

    averaged over the pixels at least (win_size - 1) // 2 from the border, then over channels.
    This is scikit-image's ``structural_similarity(a[n, c], b[n, c], gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=data_range, win_size=win_size)`` averaged
    over c (the tests check it to 1e-6): as there, win_size only sets the border that is left out,
    never the weights. win_size=None is 11 (the window's full extent, Wang et al.'s choice) when
    the images are that large, else the largest odd number that fits, so that 8x8 digits use 7
    (the central 2x2 pixels, whose windows reach over the whole image); win_size=1 averages over
    every pixel. Computed on the host in float64."""
    a, b = _images(a, b, data_range)
    side = min(a.shape[2:])
    if win_size is None:
        win_size = 11 if side >= 11 else side - (1 - side % 2)
    if not (isinstance(win_size, int) and win_size % 2 == 1 and 1 <= win_size <= side):
        raise ValueError(f"win_size must be an odd integer from 1 to {side}, got {win_size!r}")

    def blur(v):   # the separable Gaussian window: one 1-D pass along H, one along W
        for axis in (2, 3):
            v = ndimage.gaussian_filter1d(v, SSIM_SIGMA, axis=axis, mode="reflect",
                                          truncate=SSIM_TRUNCATE)
        return v

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a * mu_a, blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    pad = (win_size - 1) // 2
    h, w = a.shape[2:]
    return ssim_map[:, :, pad:h - pad, pad:w - pad].mean(axis=(1, 2, 3))


# ------------------------------------------------------------------- ECC alignment and PASS

MOTIONS = {"translation": [2, 5], "affine": [0, 1, 2, 3, 4, 5],
           "homography": [0, 1, 2, 3, 4, 5, 6, 7]}   # the free entries of the flat 3x3 warp


def _warp_points(matrix, shape):
    """The centred pixel grid (x, y) of ``shape`` and where the homography sends it (u, v, s).

    Coordinates are x = column - (W - 1) / 2, y = row - (H - 1) / 2, so the identity is the
    identity matrix and a rotation about the image centre has no translation part."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = (cols - (w - 1) / 2).ravel(), (rows - (h - 1) / 2).ravel()
    u, v, s = matrix @ np.stack([x, y, np.ones_like(x)])
    return x, y, u / s, v / s, s


def warp_image(image, matrix):
    """image: (H, W) resampled as image(phi(r)), phi the homography ``matrix`` (3, 3) on centred
    coordinates (x, y, 1) -> (u/s, v/s): (H, W). Cubic splines (bilinear interpolation blurs a
    half-pixel shift enough to bias the alignment by ~0.1 px), edge values repeated outside."""
    h, w = image.shape
    _, _, u, v, _ = _warp_points(matrix, image.shape)
    coords = [v + (h - 1) / 2, u + (w - 1) / 2]
    return ndimage.map_coordinates(image, coords, order=3, mode="nearest").reshape(h, w)


def ecc_align(image, template, motion="homography", smooth=0.7, iterations=100, tol=1e-9):
    """The warp that aligns ``image`` to ``template`` by ECC maximisation (Evangelidis &
    Psarakis 2008): returns (matrix (3, 3), rho), with warp_image(image, matrix) ~ template.

    image, template: (H, W). With t and i_w(p) the zero-mean vectors of the template and of the
    warped image, ECC maximises the correlation coefficient rho(p) = t.i_w / (|t| |i_w|), which
    ignores brightness and contrast. Each iteration linearises i_w(p + dp) ~ i_w + G dp, G the
    zero-mean Jacobian (pixels x parameters: image gradient at the warped points times d phi/dp),
    and takes the paper's closed-form maximiser of the linearised rho (forward additive)::

        P = G (G'G)^-1 G'        lambda = (|i_w|^2 - i_w' P i_w) / (t' i_w - t' P i_w)
        dp = (G'G)^-1 G' (lambda t - i_w)

    until rho gains less than ``tol``, the denominator of lambda is not positive (the paper's
    other case; we stop), or ``iterations``. The best warp seen is returned, so never one with a
    lower rho than the identity. motion: "translation", "affine" or "homography" (the entries of
    the 3x3 matrix that move). Both images are first blurred by a Gaussian of sigma ``smooth``
    pixels (0: none), as OpenCV's findTransformECC does (5 taps there), which widens the basin
    of convergence on sharp strokes. A constant image or template returns the identity (rho nan);
    a warp that degenerates (non-finite rho) ends the iterations."""
    free = MOTIONS[motion] if motion in MOTIONS else None
    if free is None:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    image, template = (ndimage.gaussian_filter(np.asarray(v, np.float64), smooth) if smooth
                       else np.asarray(v, np.float64) for v in (image, template))
    matrix = np.eye(3)
    t = template.ravel() - template.mean()
    if np.ptp(image) == 0 or not t.any():
        return matrix, math.nan
    grad_rows, grad_cols = np.gradient(image)        # d image / d row, d image / d column
    best, last = (matrix.copy(), -math.inf), -math.inf
    for _ in range(iterations):
        i_w = warp_image(image, matrix).ravel()
        i_w = i_w - i_w.mean()
        rho = t @ i_w / (np.linalg.norm(t) * np.linalg.norm(i_w) + 1e-300)
        if rho > best[1]:
            best = (matrix.copy(), rho)
        if not np.isfinite(rho) or rho - last < tol:
            break
        last = rho
        x, y, u, v, s = _warp_points(matrix, image.shape)
        g_u, g_v = warp_image(grad_cols, matrix).ravel(), warp_image(grad_rows, matrix).ravel()
        # d(u, v)/d(h00 h01 h02 h10 h11 h12 h20 h21) of u = (h00 x + h01 y + h02) / s, ...
        one, zero = np.ones_like(x), np.zeros_like(x)
        du = np.stack([x, y, one, zero, zero, zero, -x * u, -y * u], axis=1) / s[:, None]
        dv = np.stack([zero, zero, zero, x, y, one, -x * v, -y * v], axis=1) / s[:, None]
        jac = (g_u[:, None] * du + g_v[:, None] * dv)[:, free]
        jac = jac - jac.mean(axis=0)
        hessian = jac.T @ jac
        try:
            proj_i = np.linalg.solve(hessian, jac.T @ i_w)
            proj_t = np.linalg.solve(hessian, jac.T @ t)
        except np.linalg.LinAlgError:                 # no texture to align on
            break
        denominator = t @ i_w - (jac.T @ t) @ proj_i
        if denominator <= 0:
            break
        lam = (i_w @ i_w - (jac.T @ i_w) @ proj_i) / denominator
        matrix.flat[free] += lam * proj_t - proj_i
    return best


def pass_score(x, x_adv, motion="homography", win_size=None):
    """Perceptual Adversarial Similarity Score (Rozsa, Rudd & Boult 2016) per image: (N,).

    PASS(x_adv, x) = SSIM(psi(x_adv, x), x), psi the adversarial image aligned to the original
    by ECC (``ecc_align``) with a homography, as Rozsa et al. do, so that a small shift or
    rotation, invisible to a person, costs little. x, x_adv: (N, C, H, W) in [0, 1]; the warp is
    estimated on the channel mean and applied to every channel; SSIM as ``ssim`` (win_size
    likewise). 1 for identical images; host-side, one image at a time."""
    x, x_adv = _images(x, x_adv)
    aligned = np.empty_like(x_adv)
    for n in range(len(x)):
        matrix, _ = ecc_align(x_adv[n].mean(axis=0), x[n].mean(axis=0), motion)
        for c in range(x.shape[1]):
            aligned[n, c] = warp_image(x_adv[n, c], matrix)
    return ssim(x, np.clip(aligned, 0.0, 1.0), win_size=win_size)
