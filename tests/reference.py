"""Slow, obviously correct loop implementations of convolution and pooling.

The fast layers are checked against these: every output element and every gradient entry is
computed straight from its definition, one window at a time.
"""

import numpy as np


def pad(x, pads):
    (top, bottom), (left, right) = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def conv2d(x, W, b, stride, pads):
    """y[n, o, p, q] = b[o] + sum_{c, i, j} W[o, c, i, j] x_pad[n, c, p*s + i, q*s + j]."""
    xp_ = pad(x, pads)
    n, _, h, w = xp_.shape
    o, _, kh, kw = W.shape
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    y = np.zeros((n, o, ho, wo))
    for a in range(n):
        for k in range(o):
            for p in range(ho):
                for q in range(wo):
                    window = xp_[a, :, p * stride:p * stride + kh, q * stride:q * stride + kw]
                    y[a, k, p, q] = np.sum(window * W[k]) + b[k]
    return y


def conv2d_backward(x, W, grad_y, stride, pads):
    """(grad_x, grad_W, grad_b), each accumulated window by window."""
    xp_ = pad(x, pads)
    grad_xp = np.zeros_like(xp_)
    grad_W = np.zeros_like(W)
    n, o, ho, wo = grad_y.shape
    _, _, kh, kw = W.shape
    for a in range(n):
        for k in range(o):
            for p in range(ho):
                for q in range(wo):
                    rows = slice(p * stride, p * stride + kh)
                    cols = slice(q * stride, q * stride + kw)
                    grad_xp[a, :, rows, cols] += grad_y[a, k, p, q] * W[k]
                    grad_W[k] += grad_y[a, k, p, q] * xp_[a, :, rows, cols]
    (top, bottom), (left, right) = pads
    grad_x = grad_xp[:, :, top:grad_xp.shape[2] - bottom, left:grad_xp.shape[3] - right]
    return grad_x, grad_W, grad_y.sum(axis=(0, 2, 3))


def pool2d(x, k, stride, grad_y, mode):
    """Max or average pooling and its input gradient, window by window.

    Max pooling sends a window's gradient to its first maximum in row-major order
    (``np.argmax`` on the flattened window returns exactly that one).
    """
    n, c, h, w = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((n, c, ho, wo))
    grad_x = np.zeros_like(x)
    for a in range(n):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    r0, c0 = p * stride, q * stride
                    window = x[a, ch, r0:r0 + k, c0:c0 + k]
                    if mode == "max":
                        i, j = np.unravel_index(np.argmax(window), window.shape)
                        y[a, ch, p, q] = window[i, j]
                        grad_x[a, ch, r0 + i, c0 + j] += grad_y[a, ch, p, q]
                    else:
                        y[a, ch, p, q] = window.mean()
                        grad_x[a, ch, r0:r0 + k, c0:c0 + k] += grad_y[a, ch, p, q] / k ** 2
    return y, grad_x


# ---------------------------------------------------------------- detector-aware PGD, as loops
# The Alshemali study's first adaptive attacks, written as plain NumPy loops before they became
# nnscratch.attacks.EOTPGD and DetectorAwarePGD: tests/test_attacks_adaptive.py checks that the
# classes give exactly these images.

def linf_project(x, x_adv, eps):
    eps = x.dtype.type(eps)
    return np.clip(x + np.clip(x_adv - x, -eps, eps), 0, 1)


def second_class(model, x, y):
    """The most likely class other than y at x: (N,) int64."""
    logits = np.array(model.logits(x), dtype=np.float64)
    logits[np.arange(len(y)), y] = -np.inf
    return logits.argmax(axis=1)


def eot_pgd(model, x, y, eps, steps, samples, weight, seed):
    """L-inf PGD with EOT over dropout masks towards the second class (module docstring)."""
    target = second_class(model, x, y)
    x_adv, step = x.copy(), x.dtype.type(eps / 10)
    for k in range(steps):
        losses, gradients = zip(*(model.loss_gradient(x_adv, target, mc_seed=seed + k * samples + s)
                                  for s in range(samples)))
        p = np.exp(-np.stack(losses))                                    # (S, N)
        g = np.stack(gradients)                                          # (S, N, C, H, W)
        spread = p.std(axis=0) + 1e-12                                   # (N,)
        dstd = ((p - p.mean(axis=0)) * -p / (samples * spread))          # (S, N)
        total = g.mean(axis=0) + weight * np.einsum("sn,snchw->nchw", dstd, g)
        x_adv = linf_project(x, x_adv - step * np.sign(total), eps)
    return x_adv.astype(x.dtype)


def unit(g):
    norms = np.sqrt((g.reshape(len(g), -1) ** 2).sum(axis=1)).reshape(-1, 1, 1, 1)
    return g / np.maximum(norms, 1e-12)


def kde_aware_pgd(model, detector, x, y, eps, steps):
    """L-inf PGD up the loss at y and down Feinman's decision value (module docstring)."""
    x_adv, step = x.copy(), x.dtype.type(eps / 10)
    for _ in range(steps):
        _, loss_grad = model.loss_gradient(x_adv, y)
        total = unit(np.asarray(loss_grad)) - unit(np.asarray(detector.score_gradient(x_adv)))
        x_adv = linf_project(x, x_adv + step * np.sign(total), eps)
    return x_adv.astype(x.dtype)
