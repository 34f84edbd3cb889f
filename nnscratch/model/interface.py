"""The model interface attacks and defences build on, derived from one primitive.

Everything an attack or a defence may ask of a model::

    model.logits(x)                        (N, K), eval mode
    model.predict(x), model.predict_proba(x)
    model.loss_gradient(x, y, mc_seed)     per-sample cross-entropy and d(sum of them)/dx
    model.logit_gradient(x, w)             logits and d(sum w * logits)/dx
    model.jacobian(x)                      (N, K, C, H, W)
    model.features(x, names)               activations of named layers
    model.feature_gradient(x, name, w)     d(sum w * activation)/dx
    model.mc_logits(x, n_samples, seed)    (S, N, K), dropout on

``Model`` derives all of these from two methods that work on one batch, without checks::

    batch_logits(x, rng=None) -> z (n, K)                          rng given: dropout on
    batch_vjp(x, rng=None, taps=(LOGITS,)) -> ({tap: output}, pullback)

The second is the one gradient primitive, a vector-Jacobian product with several taps: one
forward pass gives the output of every tap (``LOGITS`` = "logits" names the logits, any other
name the activation of that layer), and pullback({tap: g}) = d(sum over taps of sum g *
output)/dx in ONE backward pass, for g shaped like its output (a tap given no g, or None, adds
nothing), as often as asked until the model's next forward pass. Each gradient is a choice of
g: softmax(z) - onehot(y) on the logits for the loss, ``w`` for the logits, one-hot rows for
the Jacobian; a defence that reads several layers (OpenMax, DNR) pulls back all at once.
``batch_features(x, names)`` is the outputs of ``batch_vjp`` unless a model has a cheaper way.
``Model`` holds the batching (``batch_size`` images at a time, so memory stays bounded
whatever N is) and the input checks (once per public call). ``Sequential`` implements the
primitives through its layers; a wrapper ("model after preprocessing", "an average over
crops") implements the same (and ``device``) and so has the whole interface.
"""

from nnscratch.backend import device_of, get_array_module, new_rng
from nnscratch.checks import check_integer, check_labels
from nnscratch.losses import softmax_cross_entropy
from nnscratch.ops import batch_slices, softmax

LOGITS = "logits"                 # the tap of a model's output (reserved: no layer has it)


def join_batches(parts):
    """Per-batch results joined along the batch axis: arrays, or tuples or dicts of arrays
    (joined entry by entry). The one place where batches become one result."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(join_batches(list(column)) for column in zip(*parts))
    if isinstance(first, dict):
        return {key: join_batches([part[key] for part in parts]) for key in first}
    return first if len(parts) == 1 else get_array_module(first).concatenate(parts)


def check_image_batch(x, what="x"):
    """``x`` must be a floating array of images (N, C, H, W); returns its array module.
    (``Model.check_images`` checks against one model instead: its input shape and device.)"""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{what} must be an array of images (N, C, H, W), got {type(x).__name__}")
    xp = get_array_module(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        raise ValueError(f"{what} must be floating point in [0, 1], got dtype {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"{what} must be images of shape (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    return xp


def check_unit_images(x, what="x"):
    """``check_image_batch`` and values in [0, 1], as attacks and defences take images (they
    clip to [0, 1]); returns x's array module. Reads the values: one device sync on a GPU."""
    xp = check_image_batch(x, what)
    if x.size and not (0 <= float(x.min()) and float(x.max()) <= 1):     # False for NaN too
        raise ValueError(f"{what} must have values in [0, 1], got values from "
                         f"{float(x.min())} to {float(x.max())}")
    return xp


def shaped_like(w, output, what):
    """``w`` (one batch of it) cast to ``output``'s dtype, refused unless shaped like it."""
    if not hasattr(w, "shape"):
        raise TypeError(f"w must be an array shaped like {what}, got {type(w).__name__}")
    if w.shape != output.shape:
        raise ValueError(f"w must have the shape of {what}, (N,) + {tuple(output.shape[1:])}, "
                         f"got a batch of shape {tuple(w.shape)}")
    return w.astype(output.dtype, copy=False)


class Model:
    """The model interface, from ``batch_logits``, ``batch_features``, ``batch_vjp``, ``device``.

    ``input_shape`` (C, H, W) or (F,), when not None, is checked against every input.
    """

    batch_size = 256
    input_shape = None

    # ---------------------------------------------- what a model implements (one batch, no checks)

    def batch_logits(self, x, rng=None):
        """Logits (n, K) of one batch; dropout on when ``rng`` is given."""
        raise NotImplementedError

    def batch_features(self, x, names):
        """{name: activation (n, ...)} of one batch, in eval mode."""
        return self.vjp(x, None, names)[0]

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        """({tap: output}, pullback) of one batch, one forward pass; pullback({tap: g}) =
        d(sum over the taps given a g of sum g * output)/dx in one backward pass, valid until
        the next forward pass."""
        raise NotImplementedError

    def vjp(self, x, rng=None, taps=(LOGITS,)):
        """``batch_vjp`` as the interface and the wrappers call it; also for a model written for
        the one-tap ``batch_vjp(x, rng, tap) -> (output, pullback(g))`` this replaced."""
        outputs, pullback = self.batch_vjp(x, rng, tuple(taps))
        if isinstance(outputs, dict):
            return outputs, pullback
        (tap,) = taps                       # a one-tap model can only answer one tap
        return {tap: outputs}, lambda grads: pullback(grads[tap])

    @property
    def device(self):
        """"cpu" or "gpu": where inputs must be; None if the model works on either."""
        raise NotImplementedError

    # ---------------------------------------------- batching and checks

    def batches(self, n):
        """Slices that cover range(n) in batches of ``batch_size`` (one empty slice if n == 0)."""
        return batch_slices(n, self.batch_size)

    def map_batches(self, n, compute):
        """``compute(s)`` for every batch slice ``s`` of range(n), joined (``join_batches``)."""
        return join_batches([compute(s) for s in self.batches(n)])

    def check_images(self, x):
        """Refuse inputs the model cannot sensibly use, with a message that says why.

        Type, dtype, shape and device are checked from the array's metadata. The values (no NaN
        or inf) are checked on NumPy arrays only: on a GPU that check would stall the device
        once per call, every step of an iterative attack; there a NaN input gives NaN outputs.
        Values outside [0, 1] are accepted (a model may see normalised data), not by attacks
        and defences (``check_unit_images``).
        """
        if not hasattr(x, "dtype") or not hasattr(x, "shape"):
            raise TypeError(f"images must be an array, got {type(x).__name__}")
        xp = get_array_module(x)
        if not xp.issubdtype(x.dtype, xp.floating):
            raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype} "
                             "(convert with x.astype(np.float32) / 255)")
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"expected input of shape (N, {', '.join(map(str, self.input_shape))})"
                             f", got {tuple(x.shape)}")
        if self.device is not None and device_of(x) != self.device:
            raise ValueError(f"input is on {device_of(x)}, the model on {self.device}: "
                             "move one with model.to(...) or nnscratch.backend.to_device(...)")
        if device_of(x) == "cpu" and x.size and not xp.isfinite(x).all():
            raise ValueError("input contains NaN or inf")

    # ---------------------------------------------- the interface

    def logits(self, x):
        """Logits z (N, K) in eval mode (dropout off)."""
        self.check_images(x)
        return self.map_batches(len(x), lambda s: self.batch_logits(x[s]))

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
        and descends. Returns (losses (N,), grad like x).
        """
        self.check_images(x)
        check_labels(y, len(x))
        rng = None if mc_seed is None else new_rng(mc_seed, get_array_module(x))

        def batch(s):
            out, pullback = self.vjp(x[s], rng)
            losses, grad_z = softmax_cross_entropy(out[LOGITS], y[s])   # softmax(z) - onehot(y)
            return losses, pullback({LOGITS: grad_z})

        return self.map_batches(len(x), batch)

    def logit_gradient(self, x, w):
        """Logits z (N, K) and the vector-Jacobian product d(sum_{n,k} w[n,k] z[n,k])/dx
        (like x). w: (N, K)."""
        self.check_images(x)

        def batch(s):
            out, pullback = self.vjp(x[s])
            z = out[LOGITS]
            return z, pullback({LOGITS: shaped_like(w[s], z, "the logits")})

        return self.map_batches(len(x), batch)

    def jacobian(self, x):
        """dz_k/dx for every class k: (N, K, *x.shape[1:]).

        One forward pass per batch and K pullbacks of it (row k pulls back the one-hot e_k),
        written straight into the result: memory beyond the result is that of one batch.
        """
        self.check_images(x)
        xp = get_array_module(x)
        jac = None
        for s in self.batches(len(x)):
            out, pullback = self.vjp(x[s])
            if jac is None:
                jac = xp.empty((len(x), out[LOGITS].shape[1]) + x.shape[1:], dtype=x.dtype)
            for k in range(out[LOGITS].shape[1]):
                one_hot = xp.zeros_like(out[LOGITS])
                one_hot[:, k] = 1
                jac[s, k] = pullback({LOGITS: one_hot})
        return jac

    def features(self, x, names):
        """Activations of the named layers (their outputs), in eval mode: {name: (N, ...)}."""
        self.check_images(x)
        names = [names] if isinstance(names, str) else list(names)
        return self.map_batches(len(x), lambda s: self.batch_features(x[s], names))

    def feature_gradient(self, x, name, w):
        """d(sum w * activation of layer ``name``)/dx (like x): the vector-Jacobian product
        through a tap. w: shaped like ``features(x, [name])[name]``."""
        self.check_images(x)

        def batch(s):
            out, pullback = self.vjp(x[s], taps=(name,))
            return pullback({name: shaped_like(w[s], out[name], f"feature {name!r}")})

        return self.map_batches(len(x), batch)

    def mc_logits(self, x, n_samples, seed=0):
        """Logits of ``n_samples`` stochastic passes with dropout on: (S, N, K).

        One random generator seeded with ``seed`` drives all passes, so the result is
        reproducible on one backend.
        """
        self.check_images(x)
        n_samples = check_integer(n_samples, "n_samples")
        xp = get_array_module(x)
        rng = new_rng(seed, xp)
        return xp.stack([self.map_batches(len(x), lambda s: self.batch_logits(x[s], rng=rng))
                         for _ in range(n_samples)])
