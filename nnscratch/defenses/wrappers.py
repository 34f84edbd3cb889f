"""Defended models with the model interface: "model after preprocessing" and "the average over
five crops" (Günther, Rozsa & Boult 2017, section 2.2, Table 2).

Each wrapper implements the three per-batch methods of ``nnscratch.model.Model`` and so has the
whole interface (logits, loss and logit gradients, Jacobians, feature taps, MC dropout): every
attack can target the defended model as it targets the bare one.

    Preprocessed(model, t)     z(x) = model(t(x));  dL/dx = t.pullback(model.pullback(g))
    FiveCropAverage(model)     z(x) = 1/5 sum_k model(crop_k(pad(x)));
                               dL/dx = unpad(sum_k uncrop_k(model.pullback_k(g / 5)))

(every tap of ``batch_vjp`` passes through, each g transformed alike), and ``EvalModeHead``,
what a fitted defence's scores on top of the network share (``OpenMaxModel``,
``RejectingModel``): one forward and one backward pass of the network per gradient.
"""

from nnscratch.backend import get_array_module, new_rng
from nnscratch.defenses.preprocessing import Transform
from nnscratch.checks import check_flag, check_integer, check_seed
from nnscratch.model import Model
from nnscratch.model.interface import LOGITS


def check_model(model, what):
    if not isinstance(model, Model):
        raise TypeError(f"{what} takes a model with the model interface (nnscratch.model.Model),"
                        f" got {type(model).__name__}")


class Preprocessed(Model):
    """``model`` applied to ``transform(x)``: x (N, C, H, W) -> logits (N, K).

    Gradients go through the transform's pullback: the true derivative where ``transform.exact``,
    the identity (BPDA) through the steps that are not differentiable (rounding).

    Randomness: the wrapper holds the random Generator its transform draws from, seeded with
    ``seed`` (one per array module, made at first use: NumPy's for NumPy input, CuPy's for
    CuPy). By default every pass draws afresh (two calls of ``logits(x)`` see different noise
    and shifts, as a deployed stochastic defence would), and the sequence of draws is
    reproducible from ``seed``. With ``fixed_draw=True`` every batch re-seeds a Generator with
    ``seed``: the transform is then one fixed function (the image at position i of a batch
    always gets the same draw), which finite-difference checks, and attacks against one known
    draw, need. The model's own dropout (``rng`` of the interface) is independent of both.
    """

    def __init__(self, model, transform, seed=0, fixed_draw=False):
        check_model(model, "Preprocessed")
        if not isinstance(transform, Transform):
            raise TypeError(f"Preprocessed takes a Transform (nnscratch.defenses.preprocessing),"
                            f" got {type(transform).__name__}")
        check_flag(fixed_draw, "fixed_draw")
        self.model, self.transform = model, transform
        self.seed = check_seed(seed, "Preprocessed: seed")
        self.fixed_draw = fixed_draw
        self.input_shape, self.batch_size = model.input_shape, model.batch_size
        self._generators = {}                     # array module -> running Generator

    def generator(self, xp):
        """The Generator the transform draws from for a batch of array module ``xp``."""
        if self.fixed_draw:
            return new_rng(self.seed, xp)
        if xp not in self._generators:
            self._generators[xp] = new_rng(self.seed, xp)
        return self._generators[xp]

    def transformed(self, x):
        """(t(x), pullback of t) for one batch, drawing from ``generator``."""
        return self.transform.apply(x, self.generator(get_array_module(x)))

    def batch_logits(self, x, rng=None):
        return self.model.batch_logits(self.transformed(x)[0], rng)

    def batch_features(self, x, names):
        return self.model.batch_features(self.transformed(x)[0], names)

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        x_t, transform_pullback = self.transformed(x)
        outputs, model_pullback = self.model.vjp(x_t, rng, taps)
        return outputs, lambda grads: transform_pullback(model_pullback(grads))

    device = property(lambda self: self.model.device)

    def to(self, device):
        """Move the wrapped model (its parameters) to "cpu" or "gpu"; returns the wrapper."""
        self.model.to(device)
        return self

    def __repr__(self):
        return (f"Preprocessed({type(self.model).__name__}, {self.transform!r}, seed={self.seed},"
                f" fixed_draw={self.fixed_draw})")


# top-left, top-right, bottom-left, bottom-right, centre: (row, column) of the crop's corner
# in the image padded by ``pad`` pixels, in units of ``pad``
CROP_CORNERS = ((0, 0), (0, 2), (2, 0), (2, 2), (1, 1))


def five_crops(x, pad=1):
    """The five crops of x padded with ``pad`` black (0) pixels on every side.

    x: (N, C, H, W) -> (5, N, C, H, W), crops in ``CROP_CORNERS`` order; the centre crop is x.
    """
    xp = get_array_module(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    return xp.stack([padded[:, :, i * pad:i * pad + h, j * pad:j * pad + w]
                     for i, j in CROP_CORNERS])


def five_crops_pullback(g, pad=1):
    """The transpose of ``five_crops``: g (5, N, C, H, W) -> (N, C, H, W), each crop's gradient
    added back where the crop came from, then the padding dropped."""
    xp = get_array_module(g)
    _, n, c, h, w = g.shape
    padded = xp.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=g.dtype)
    for k, (i, j) in enumerate(CROP_CORNERS):
        padded[:, :, i * pad:i * pad + h, j * pad:j * pad + w] += g[k]
    return padded[:, :, pad:pad + h, pad:pad + w]


class FiveCropAverage(Model):
    """The average of ``model``'s logits over the five crops of x padded by ``pad`` black pixels.

    x: (N, C, H, W) -> z (N, K) = 1/5 sum_k model(crop_k), crops as in ``five_crops``. Günther
    et al. pad MNIST's 28 x 28 images to 30 x 30 (pad = 1), run the five 28 x 28 crops through
    LeNet, average ip2 (the logits) and classify the average. The five crops run as one batch of
    5n images (one forward pass, so one pullback serves them all); the gradient is exact:
    pullback(g) = five_crops_pullback(model.pullback(g / 5 for each crop)).

    Features: ``features(x, [name])`` is the activation of layer ``name`` averaged over the five
    crops, like the logits (so the logit layer's "feature" is the logits), and
    ``feature_gradient`` differentiates that average.
    """

    def __init__(self, model, pad=1):
        check_model(model, "FiveCropAverage")
        self.model = model
        self.pad = check_integer(pad, "FiveCropAverage: pad")
        self.input_shape, self.batch_size = model.input_shape, model.batch_size

    def crops(self, x):
        """The five crops as one batch: (5n, C, H, W), crop-major."""
        return five_crops(x, self.pad).reshape((5 * len(x),) + tuple(x.shape[1:]))

    @staticmethod
    def average(output):
        """(5n, ...) per-crop outputs -> (n, ...) their mean over the crops."""
        return output.reshape((5, len(output) // 5) + tuple(output.shape[1:])).mean(axis=0)

    def batch_logits(self, x, rng=None):
        return self.average(self.model.batch_logits(self.crops(x), rng))

    def batch_features(self, x, names):
        taps = self.model.batch_features(self.crops(x), names)
        return {name: self.average(value) for name, value in taps.items()}

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        xp = get_array_module(x)
        outputs, pullback = self.model.vjp(self.crops(x), rng, taps)      # each (5n, ...)

        def average_pullback(grads):                                      # each g: (n, ...)
            shares = {name: None if g is None else xp.concatenate([g / g.dtype.type(5)] * 5)
                      for name, g in grads.items()}
            grad_crops = pullback(shares)                                 # (5n, C, H, W)
            return five_crops_pullback(grad_crops.reshape((5,) + tuple(x.shape)), self.pad)

        return {name: self.average(h) for name, h in outputs.items()}, average_pullback

    device = property(lambda self: self.model.device)

    def to(self, device):
        """Move the wrapped model (its parameters) to "cpu" or "gpu"; returns the wrapper."""
        self.model.to(device)
        return self

    def __repr__(self):
        return f"FiveCropAverage({type(self.model).__name__}, pad={self.pad})"


class EvalModeHead(Model):
    """The network ``model`` with a fitted defence's head on top, as a model: what
    ``OpenMaxModel`` and ``RejectingModel`` share. The head reads the network's taps
    ``head_taps`` (its logits, tapped layers) and gives the logits; a subclass provides

        head(outputs, x) -> (logits (n, K'), pullback(g) -> {tap: gradient}), for one batch,
        outputs = {tap: activation (n, ...)} of the network for every name in ``head_taps``

    ``batch_vjp`` then runs the network ONCE, forward with the head's taps (and any layer
    asked for beside the logits), and its pullback runs it ONCE backward, the head's gradients
    and those given for the layers added in that one pass. The tap ``LOGITS`` here is the
    head's logits; any other tap is the network's own layer. There is no dropout mode: the
    head was fitted on the network in eval mode, so an ``rng`` (``mc_logits``,
    ``loss_gradient(mc_seed=...)``) is refused.
    """

    head_taps = ()

    def __init__(self, model):
        self.model = model
        self.input_shape, self.batch_size = model.input_shape, model.batch_size

    def refuse_dropout(self, rng):
        if rng is not None:
            raise ValueError(f"{type(self).__name__} has no dropout mode: its head is fitted on "
                             "the network in eval mode (no mc_seed, no mc_logits)")

    def batch_logits(self, x, rng=None):
        self.refuse_dropout(rng)
        return self.head(self.model.batch_features(x, self.head_taps), x)[0]

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        if LOGITS not in taps:
            return self.model.vjp(x, rng, taps)
        self.refuse_dropout(rng)
        layers = tuple(name for name in taps if name != LOGITS)
        inner = tuple(self.head_taps) + tuple(n for n in layers if n not in self.head_taps)
        hidden, network_pullback = self.model.vjp(x, None, inner)
        logits, head_pullback = self.head(hidden, x)
        outputs = {name: logits if name == LOGITS else hidden[name] for name in taps}

        def pullback(grads):
            grads = dict(grads)
            g = grads.pop(LOGITS, None)
            for name, g_head in ({} if g is None else head_pullback(g)).items():
                grads[name] = g_head if grads.get(name) is None else grads[name] + g_head
            return network_pullback(grads)

        return outputs, pullback

    def head(self, outputs, x):
        raise NotImplementedError

    device = property(lambda self: self.model.device)
