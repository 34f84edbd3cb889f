"""Wang & Zhang's integrated model (2019, "Towards robust image classification against
adversarial examples", section IV.E and Tables VI-VII): several defended networks read the same
image, and a small network decides from all their logits together.

    z_m = f_m(x)                        m = 1 .. M, each (N, K): a network, perhaps behind its
                                        preprocessing (``Preprocessed``)
    h   = [z_1, z_2, ..., z_M]          (N, M K), the logits side by side
    out = combiner(h)                   (N, K_out), the integrated model's logits

The paper's six members are {no preprocessing, Gaussian blur, median squeeze} x {FGSM-trained,
black-box}, and its combiner an MLP M K -> 256 -> 256 -> K (``combiner``), trained on the
logits of clean training images ("we don't train image based on the attacked image").

The integrated model has the model interface, so an attack can target the whole pipeline. Its
vector-Jacobian product is the chain rule through the concatenation: the combiner's input
gradient g_h (N, M K) is cut into the M blocks g_m (N, K), and

    d(sum g * out)/dx = sum_m pullback_m(g_m)

each member's own pullback (through its preprocessing, exact or BPDA as its transform says).
"""

import numpy as np

from nnscratch.backend import get_array_module, to_device
from nnscratch.checks import check_flag, check_integer, check_seed
from nnscratch.layers import Dense, ReLU
from nnscratch.model import Model, Sequential
from nnscratch.model.interface import LOGITS


def combiner(inputs, num_classes=2, hidden=(256, 256), activation=True, seed=0):
    """The MLP on the members' logits: inputs -> hidden... -> num_classes (``Dense`` layers,
    each hidden one followed by a ReLU when ``activation``).

    The paper's combiner is 12 -> 256 -> 256 -> 2 with ReLUs; its authors' code built the same
    sizes without activations (a linear map, whatever its depth)."""
    inputs = check_integer(inputs, "combiner: inputs")
    num_classes = check_integer(num_classes, "combiner: num_classes", minimum=2)
    sizes = [check_integer(h, "combiner: every hidden size") for h in hidden]
    check_flag(activation, "combiner: activation")
    rng = np.random.default_rng(check_seed(seed))
    layers, width = [], inputs
    for size in sizes:
        layers.append(Dense(width, size, rng=rng))
        if activation:
            layers.append(ReLU())
        width = size
    layers.append(Dense(width, num_classes, rng=rng))
    return Sequential(layers, input_shape=(inputs,))


def innermost(model):
    """The network inside a wrapper (``Preprocessed(model, t).model``, ...), or the model."""
    while isinstance(getattr(model, "model", None), Model):
        model = model.model
    return model


class IntegratedModel(Model):
    """``combiner`` on the concatenated logits of ``members``: x (N, C, H, W) -> (N, K_out).

    members: models with the model interface, all with the same input shape and the same number
    of classes K; combiner: a ``Sequential`` taking (N, M K). Dropout (``rng``) reaches every
    member and the combiner. Feature taps name the combiner's layers."""

    def __init__(self, members, combiner):
        members = list(members)
        if not members:
            raise ValueError("IntegratedModel needs at least one member model")
        for member in members:
            if not isinstance(member, Model):
                raise TypeError(f"IntegratedModel members must have the model interface "
                                f"(nnscratch.model.Model), got {type(member).__name__}")
        if not isinstance(combiner, Sequential):
            raise TypeError(f"combiner must be a Sequential, got {type(combiner).__name__}")
        shapes = {tuple(m.input_shape) for m in members if m.input_shape is not None}
        if len(shapes) > 1:
            raise ValueError(f"the members take different input shapes: {sorted(shapes)}")
        networks = [id(network) for network in map(innermost, members)]
        if len(set(networks)) < len(networks):
            raise ValueError("two members share one network: the backward pass of one would "
                             "read the other's forward caches; give each member its own copy")
        self.members, self.combiner = members, combiner
        self.input_shape = shapes.pop() if shapes else None
        self.batch_size = min(m.batch_size for m in members)
        self.classes = self.member_classes()
        expected = (len(members) * self.classes,)
        if combiner.input_shape is not None and tuple(combiner.input_shape) != expected:
            raise ValueError(f"the combiner takes inputs of shape {combiner.input_shape}, but "
                             f"{len(members)} members of {self.classes} classes give {expected}")

    def member_classes(self):
        """K, the members' common number of classes (found from one blank image); a ValueError
        when the members disagree."""
        if self.input_shape is None:
            raise ValueError("IntegratedModel needs members with an input_shape")
        blank = to_device(np.zeros((1,) + tuple(self.input_shape), np.float32),
                          self.device or "cpu")
        counts = [int(member.logits(blank).shape[1]) for member in self.members]
        if len(set(counts)) > 1:
            raise ValueError(f"the members have different numbers of classes: {counts}")
        return counts[0]

    def member_logits(self, x):
        """h = [z_1, ..., z_M] (N, M K) in eval mode, batched: the combiner's input."""
        self.check_images(x)
        return self.map_batches(len(x), lambda s: self.concatenated(x[s], None))

    def concatenated(self, x, rng):
        xp = get_array_module(x)
        return xp.concatenate([m.batch_logits(x, rng) for m in self.members], axis=1)

    def batch_logits(self, x, rng=None):
        return self.combiner.forward(self.concatenated(x, rng), rng=rng)

    def batch_features(self, x, names):
        return self.combiner.batch_features(self.concatenated(x, None), names)

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        member_vjps = [m.vjp(x, rng) for m in self.members]
        xp = get_array_module(x)
        h = xp.concatenate([outputs[LOGITS] for outputs, _ in member_vjps], axis=1)  # (N, M K)
        outputs, combiner_pullback = self.combiner.vjp(h, rng, taps)
        k = self.classes

        def pullback(grads):
            g_h = combiner_pullback(grads)                                           # (N, M K)
            dx = None
            for m, (_, member_pullback) in enumerate(member_vjps):
                part = member_pullback({LOGITS: g_h[:, m * k:(m + 1) * k]})
                dx = part if dx is None else dx + part
            return dx

        return outputs, pullback

    @property
    def device(self):
        return self.combiner.device

    def to(self, device):
        """Move every member and the combiner to "cpu" or "gpu"; returns the model."""
        for member in self.members:
            member.to(device)
        self.combiner.to(device)
        return self

    def __repr__(self):
        return (f"IntegratedModel({len(self.members)} members of {self.classes} classes, "
                f"combiner {self.combiner.layer_shapes()[-1]})")
