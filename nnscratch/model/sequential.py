"""Sequential: a stack of layers, with the model interface and a training step.

The interface (``interface.Model``) needs per-batch methods; here they are one forward pass
and one backward pass through the layers' hand-written derivatives::

    batch_logits(x, rng)        forward through every layer
    batch_vjp(x, rng, taps)     forward up to the deepest tap, keeping the taps' outputs;
                                pullback = one backward pass (param_grads=False), each g
                                added where the pass reaches its tap's layer

Training uses ``compute_gradients``: forward with dropout, backward filling ``layer.grads``.
"""

import numpy as np

from nnscratch.backend import device_of, get_array_module
from nnscratch.layers.base import Layer
from nnscratch.checks import check_integer, check_labels
from nnscratch.losses import softmax_cross_entropy
from nnscratch.model.interface import LOGITS, Model


class Sequential(Model):
    """Layers applied in order. x: (N, *input_shape) -> logits (N, K).

    ``input_shape`` (C, H, W) or (F,), when given, is checked against every input and lets
    ``summary()`` show each layer's output shape. Layers without a name get one from their
    type and position (``conv2d_1``, ``relu_2``, ...); names must be unique.
    """

    def __init__(self, layers, input_shape=None, batch_size=256):
        self.layers = list(layers)
        self.input_shape = (tuple(check_integer(d, "input_shape: every size") for d in input_shape)
                            if input_shape is not None else None)
        self.batch_size = check_integer(batch_size, "batch_size")
        counts = {}
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes Layer objects, got {layer!r}")
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

    # ---------------------------------------------- forward and backward through the layers

    def forward(self, x, training=False, rng=None):
        """Run every layer on one batch (no checks, no batching)."""
        for layer in self.layers:
            x = layer.forward(x, training=training, rng=rng)
        return x

    def backward(self, grad, param_grads=True, input_grad=True):
        """Back-propagate ``grad`` (of the output) to the input through the latest ``forward``'s
        caches; grad_x, or None with ``input_grad=False`` (training needs no input gradient)."""
        for i in reversed(range(len(self.layers))):
            # every layer but the first must pass a gradient down to the layer below it
            grad = self.layers[i].backward(grad, param_grads=param_grads,
                                           input_grad=input_grad or i > 0)
        return grad if input_grad else None

    def index(self, name):
        """Position of the layer called ``name``; KeyError listing the names otherwise."""
        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise KeyError(f"no layer named {name!r}; layers: {[l.name for l in self.layers]}")

    def __getitem__(self, name):
        return self.layers[self.index(name)]

    # ---------------------------------------------- the model interface's three methods

    def batch_logits(self, x, rng=None):
        return self.forward(x, rng=rng)

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        depth = {name: len(self.layers) - 1 if name == LOGITS else self.index(name)
                 for name in taps}                                  # the layer of each tap
        outputs, h = {}, x
        for i, layer in enumerate(self.layers[:max(depth.values(), default=-1) + 1]):
            h = layer.forward(h, rng=rng)
            outputs.update({name: h for name in taps if depth[name] == i})

        def pullback(grads):
            if set(grads) - set(taps):
                raise KeyError(f"gradients for {sorted(grads)}, taps {list(taps)}")
            grad = None                    # d(sum)/d(output of layer i); None: nothing yet
            for i in reversed(range(max(depth.values(), default=-1) + 1)):
                for name in taps:
                    if depth[name] == i and grads.get(name) is not None:
                        grad = grads[name] if grad is None else grad + grads[name]
                if grad is not None:
                    grad = self.layers[i].backward(grad, param_grads=False)
            return get_array_module(x).zeros_like(x) if grad is None else grad

        return outputs, pullback

    @property
    def device(self):
        """"cpu" or "gpu": where the parameters are (None for a model without parameters)."""
        for layer in self.layers:
            for value in layer.params.values():
                return device_of(value)
        return None

    # ---------------------------------------------- training and housekeeping

    def compute_gradients(self, x, y, rng):
        """One training pass on a batch: forward with dropout (``rng``), mean cross-entropy,
        backward filling every layer's ``grads`` with d(mean loss)/d(param).

        Returns (mean loss, logits (N, K)).
        """
        self.check_images(x)
        check_labels(y, len(x))
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
        params = self.parameters()
        xp = get_array_module(params[0][1]) if params else np
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
