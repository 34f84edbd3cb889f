"""Losses on logits. Each returns the per-sample losses and their gradient with respect to
the logits: the gradient of the *sum* of the losses, so every sample's gradient is its own
(divide by N for the gradient of the mean used in training)."""

import numpy as np

from nnscratch.backend import get_array_module
from nnscratch.ops import log_softmax


def softmax_cross_entropy(logits, labels):
    """L_n = -log softmax(z_n)[y_n] = logsumexp(z_n) - z_n[y_n]; dL_n/dz_n = softmax(z_n) - onehot(y_n).

    logits: (N, K) float; labels: (N,) int in [0, K). Returns (losses (N,), grad (N, K)).
    Labels out of range are refused on the CPU; on a GPU that check would stall the device
    on every call, so there the caller checks them once (``fit`` does, on the host).
    """
    xp = get_array_module(logits)
    n, k = logits.shape
    if n and xp is np and not (0 <= int(labels.min()) and int(labels.max()) < k):
        raise ValueError(f"labels must be in [0, {k}), got values from {int(labels.min())} "
                         f"to {int(labels.max())}")
    rows = xp.arange(n)
    log_p = log_softmax(logits)
    losses = -log_p[rows, labels]
    grad = xp.exp(log_p)
    grad[rows, labels] -= 1
    return losses, grad


def binary_cross_entropy(logits, labels):
    """L_n = -y log sigma(z) - (1 - y) log(1 - sigma(z)) = softplus(z) - y z; dL/dz = sigma(z) - y.

    logits: (N,) float, one logit per sample; labels: (N,) in {0, 1}. Returns
    (losses (N,), grad (N,)). softplus(z) = log(1 + e^z) is computed as logaddexp(0, z).
    """
    xp = get_array_module(logits)
    y = labels.astype(logits.dtype)
    losses = xp.logaddexp(logits.dtype.type(0), logits) - y * logits
    half = logits.dtype.type(0.5)
    grad = half * (1 + xp.tanh(half * logits)) - y
    return losses, grad
