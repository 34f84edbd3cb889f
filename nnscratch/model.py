"""Sequential: a stack of layers, and the model interface attacks and defences build on.

Everything an attack may ask of a model is here, computed by one forward pass and one
backward pass through the layers' hand-written derivatives::

    model.logits(x)                        (N, K), eval mode
    model.loss_gradient(x, y)              per-sample cross-entropy and d(sum of them)/dx
    model.logit_gradient(x, w)             logits and d(sum w * logits)/dx
    model.jacobian(x)                      (N, K, C, H, W)
    model.features(x, names)               activations of named layers
    model.feature_gradient(x, name, w)     d(sum w * activation)/dx
    model.mc_logits(x, n_samples, seed)    (S, N, K), dropout on

None of them touches the parameter gradients (they call ``backward(param_grads=False)``),
and all of them work through the input in batches of ``batch_size`` so that memory stays
bounded whatever N is. Training uses ``forward(training=True)`` / ``backward()`` through
``compute_gradients``.
"""

import numpy as np

from nnscratch.backend import device_of, get_array_module, new_rng
from nnscratch.losses import softmax_cross_entropy
from nnscratch.ops import softmax


class Sequential:
    """Layers applied in order. x: (N, *input_shape) -> logits (N, K).

    ``input_shape`` (C, H, W) or (F,), when given, is checked against every input and lets
    ``summary()`` show each layer's output shape. Layers without a name get one from their
    type and position (``conv2d_1``, ``relu_2``, ...); names must be unique.
    """

    def __init__(self, layers, input_shape=None, batch_size=256):
        self.layers = list(layers)
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.batch_size = batch_size
        counts = {}
        for layer in self.layers:
            kind = type(layer).__name__.lower()
            counts[kind] = counts.get(kind, 0) + 1
            if layer.name is None:
                layer.name = f"{kind}_{counts[kind]}"
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layer names must be unique; repeated: {duplicates}")
        if self.input_shape is not None:
            self.layer_shapes()  # fails early, naming the layer, if the stack does not fit

    # ----------------------------------------------------------------- plumbing

    def forward(self, x, training=False, rng=None, until=None):
        """Run the layers on one batch (no checks, no batching); stop after layer ``until``."""
        for layer in self.layers:
            x = layer.forward(x, training=training, rng=rng)
            if layer.name == until:
                break
        return x

    def backward(self, grad, param_grads=True, start=None, input_grad=True):
        """Back-propagate ``grad`` from the output of layer ``start`` (default: the last one)
        down to the input, through the caches of the latest ``forward``; returns grad_x, or
        None with ``input_grad=False`` (training: the first layer may skip that work)."""
        stop = len(self.layers) if start is None else self.index(start) + 1
        for i in reversed(range(stop)):
            grad = self.layers[i].backward(grad, param_grads=param_grads,
                                           input_grad=input_grad or i > 0)
        return grad if input_grad else None

    def index(self, name):
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def __getitem__(self, name):
        return self.layers[self.index(name)]

    def check_images(self, x):
        """Refuse inputs the model cannot sensibly use, with a message that says why."""
        if not hasattr(x, "dtype") or not hasattr(x, "shape"):
            raise TypeError(f"expected an array, got {type(x).__name__}")
        xp = get_array_module(x)
        if not xp.issubdtype(x.dtype, xp.floating):
            raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype} "
                             "(convert with x.astype(np.float32) / 255)")
        if self.input_shape is not None and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"expected input of shape (N, {', '.join(map(str, self.input_shape))})"
                             f", got {tuple(x.shape)}")
        params = [p for layer in self.layers for p in layer.params.values()]
        if params and get_array_module(params[0]) is not xp:
            raise ValueError(f"input is on {device_of(x)}, the model on {device_of(params[0])}: "
                             "move one with model.to(...) or nnscratch.backend.to_device(...)")
        if x.size and not bool(xp.isfinite(x).all()):
            raise ValueError("input contains NaN or inf")

    def check_labels(self, y, n, name="labels"):
        xp = get_array_module(y)
        if y.shape != (n,) or not xp.issubdtype(y.dtype, xp.integer):
            raise ValueError(f"{name} must be integers of shape ({n},), got {y.dtype} "
                             f"{tuple(y.shape)}")

    def batches(self, n):
        """Slices that cover range(n) in batches of ``batch_size`` (one empty slice if n == 0)."""
        size = self.batch_size
        return [slice(i, i + size) for i in range(0, n, size)] or [slice(0, 0)]

    def _batched(self, x, compute):
        """Apply ``compute(slice)`` to every batch and concatenate the results along axis 0."""
        xp = get_array_module(x)
        parts = [compute(s) for s in self.batches(len(x))]
        return parts[0] if len(parts) == 1 else xp.concatenate(parts)

    # ----------------------------------------------------------------- the model interface

    def logits(self, x):
        """Logits z (N, K) in eval mode (dropout off)."""
        self.check_images(x)
        return self._batched(x, lambda s: self.forward(x[s]))

    def predict(self, x):
        """Predicted labels (N,): argmax of the logits."""
        return self.logits(x).argmax(axis=1)

    def predict_proba(self, x):
        """Class probabilities (N, K): softmax of the logits."""
        return softmax(self.logits(x))

    def loss_gradient(self, x, y, mc_seed=None):
        """Per-sample cross-entropy L_n (N,) and dL_n/dx_n for every n (the gradient of the sum).

        Eval mode; with ``mc_seed`` the pass runs with dropout on (one MC-dropout sample, for
        expectation-over-transformation attacks). A targeted attack passes the target as ``y``
        and descends.
        """
        self.check_images(x)
        self.check_labels(y, len(x))
        rng = None if mc_seed is None else new_rng(mc_seed, get_array_module(x))
        losses = []

        def gradient(s):
            z = self.forward(x[s], rng=rng)
            loss, grad_z = softmax_cross_entropy(z, y[s])
            losses.append(loss)
            return self.backward(grad_z, param_grads=False)

        grad = self._batched(x, gradient)
        xp = get_array_module(x)
        return (losses[0] if len(losses) == 1 else xp.concatenate(losses)), grad

    def logit_gradient(self, x, w):
        """Logits z (N, K) and the vector-Jacobian product d(sum_{n,k} w[n,k] z[n,k])/dx."""
        self.check_images(x)
        logits = []

        def gradient(s):
            z = self.forward(x[s])
            if w[s].shape != z.shape:
                raise ValueError(f"w must have the logits' shape {(len(x),) + z.shape[1:]}, "
                                 f"got {tuple(w.shape)}")
            logits.append(z)
            return self.backward(w[s].astype(z.dtype, copy=False), param_grads=False)

        grad = self._batched(x, gradient)
        xp = get_array_module(x)
        return (logits[0] if len(logits) == 1 else xp.concatenate(logits)), grad

    def jacobian(self, x):
        """dz_k/dx for every class k: (N, K, *x.shape[1:]).

        One forward pass per batch and K backward passes through its caches (row k is
        ``logit_gradient`` with the one-hot weight e_k), so memory beyond the result stays
        that of one batch.
        """
        self.check_images(x)
        xp = get_array_module(x)
        rows = []
        for s in self.batches(len(x)):
            z = self.forward(x[s])
            n, k = z.shape
            jac = xp.empty((n, k) + x.shape[1:], dtype=x.dtype)
            for cls in range(k):
                one_hot = xp.zeros_like(z)
                one_hot[:, cls] = 1
                jac[:, cls] = self.backward(one_hot, param_grads=False)
            rows.append(jac)
        return rows[0] if len(rows) == 1 else xp.concatenate(rows)

    def features(self, x, names):
        """Activations of the named layers (their outputs), in eval mode: {name: array}."""
        self.check_images(x)
        names = [names] if isinstance(names, str) else list(names)
        last = max(self.index(name) for name in names)
        xp = get_array_module(x)
        taps = {name: [] for name in names}
        for s in self.batches(len(x)):
            h = x[s]
            for layer in self.layers[:last + 1]:
                h = layer.forward(h)
                if layer.name in taps:
                    taps[layer.name].append(h)
        return {name: parts[0] if len(parts) == 1 else xp.concatenate(parts)
                for name, parts in taps.items()}

    def feature_gradient(self, x, name, w):
        """d(sum w * activation of layer ``name``)/dx: the vector-Jacobian product through a tap."""
        self.check_images(x)
        self.index(name)

        def gradient(s):
            h = self.forward(x[s], until=name)
            if w[s].shape != h.shape:
                raise ValueError(f"w must have the shape of feature {name!r}, "
                                 f"{(len(x),) + h.shape[1:]}, got {tuple(w.shape)}")
            return self.backward(w[s].astype(h.dtype, copy=False), param_grads=False, start=name)

        return self._batched(x, gradient)

    def mc_logits(self, x, n_samples, seed=0):
        """Logits of ``n_samples`` stochastic passes with dropout on: (S, N, K).

        One random generator seeded with ``seed`` drives all passes, so the result is
        reproducible on one backend.
        """
        self.check_images(x)
        xp = get_array_module(x)
        rng = new_rng(seed, xp)
        return xp.stack([self._batched(x, lambda s: self.forward(x[s], rng=rng))
                         for _ in range(n_samples)])

    # ----------------------------------------------------------------- training helpers

    def compute_gradients(self, x, y, rng):
        """One training pass on a batch: forward with dropout (``rng``), mean cross-entropy,
        backward filling every layer's ``grads`` with d(mean loss)/d(param).

        Returns (mean loss, logits (N, K)).
        """
        self.check_images(x)
        self.check_labels(y, len(x))
        z = self.forward(x, training=True, rng=rng)
        losses, grad_z = softmax_cross_entropy(z, y)
        n = max(len(x), 1)
        self.backward(grad_z * grad_z.dtype.type(1 / n), param_grads=True, input_grad=False)
        return float(losses.sum()) / n, z

    def parameters(self):
        """(qualified name "layer.param", parameter, gradient or None) for every parameter."""
        return [(f"{layer.name}.{key}", value, layer.grads.get(key))
                for layer in self.layers for key, value in layer.params.items()]

    @property
    def n_params(self):
        return sum(int(p.size) for _, p, _ in self.parameters())

    def layer_shapes(self, input_shape=None):
        """Output shape (without the batch axis) of every layer for one input example.

        Found by running an empty batch (N = 0) through the layers: their own input checks
        then say, naming the layer, where the stack does not fit.
        """
        shape = tuple(input_shape or self.input_shape or ())
        if not shape:
            raise ValueError("the model has no input_shape; pass one")
        params = [p for layer in self.layers for p in layer.params.values()]
        xp = get_array_module(params[0]) if params else np
        h = xp.zeros((0,) + shape, dtype=xp.float32)
        shapes = []
        for layer in self.layers:
            h = layer.forward(h)
            shapes.append(tuple(h.shape[1:]))
        return shapes

    def summary(self, input_shape=None):
        """A table of layer name, type, output shape and parameter count."""
        shapes = self.layer_shapes(input_shape)
        rows = [("layer", "type", "output shape", "params")]
        for layer, shape in zip(self.layers, shapes):
            count = sum(int(p.size) for p in layer.params.values())
            rows.append((layer.name, type(layer).__name__, str(shape), f"{count:,}"))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(width) if i < 3 else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"total parameters: {self.n_params:,}")
        return "\n".join(lines)

    def to(self, device):
        """Move every parameter to "cpu" or "gpu"; returns the model."""
        for layer in self.layers:
            layer.to(device)
        return self

    def astype(self, dtype):
        """Cast every parameter to ``dtype``; returns the model."""
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def __repr__(self):
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], input_shape={self.input_shape})"

