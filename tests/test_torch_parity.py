"""nnscratch against PyTorch: same weights, same outputs, same gradients, same optimizer steps.

Weights map one-to-one (ARCHITECTURE.md, "Layers"): Conv2D W (O, C, kh, kw) is
``torch.nn.Conv2d.weight``, Dense W (in, out) is ``torch.nn.Linear.weight`` transposed, b is the
bias. Every layer is compared on its output, its input gradient and its parameter gradients under
a random upstream gradient (not ``sum()``, which would hide a transposed or mis-routed gradient).

Tolerances (float32 on both sides): ``rtol = atol = 1e-5``, the absolute part scaled by the
largest magnitude of the reference. Both libraries round every product to float32 (unit
roundoff 6e-8) but sum in different orders (im2col + BLAS here, oneDNN / ATen there), so a sum of
K terms may differ by up to about sqrt(K) * 6e-8 of its scale (K is in the thousands for the
weight gradients of LeNet's convolutions); the worst seen in this file is 1.1e-6 of the scale.
1e-5 leaves a 9x margin, yet a single wrong term in a sum (an off-by-one window, a wrong padding
side, a gradient routed to the wrong tied maximum) moves the result by ~1e-1 of the scale and
fails. What is exact in both (Dropout in eval mode, which elements a max-pool routes to, Flatten's
order) is compared exactly. The optimizer tests at the end explain their own tolerances.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

# The tensors here are tiny: torch's thread pool only adds overhead, and on a busy CI machine its
# spinning workers made this file 3x slower.
torch.set_num_threads(1)

from nnscratch import zoo  # noqa: E402
from nnscratch.backend import new_rng  # noqa: E402
from nnscratch.layers import (AvgPool2D, Conv2D, Conv2DTranspose, Dense,  # noqa: E402
                              Dropout, Flatten, GaussianBlur, LeakyReLU, MaxPool2D, ReLU,
                              Reshape, Sigmoid, Tanh)
from nnscratch.losses import softmax_cross_entropy  # noqa: E402
from nnscratch.optim import SGD, Adam  # noqa: E402

RTOL = 1e-5
ATOL = 1e-5   # times the largest |reference| value, see the module docstring


def assert_close(ours, reference, rtol=RTOL, atol=ATOL):
    """ours (NumPy) equals reference (tensor or array) to float32 precision; same shape, dtype."""
    if torch.is_tensor(reference):
        reference = reference.detach().numpy()
    ours = np.asarray(ours)
    assert ours.shape == reference.shape
    assert ours.dtype == reference.dtype
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=atol * (scale or 1.0))


# --------------------------------------------------------------------------- nnscratch -> torch

def torch_params(layer):
    """The layer's parameters as torch leaf tensors, in torch's layout."""
    if isinstance(layer, Dense):
        return {"W": torch.tensor(layer.params["W"].T.copy(), requires_grad=True),
                "b": torch.tensor(layer.params["b"], requires_grad=True)}
    return {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}


def as_nnscratch_layout(layer, key, tensor):
    """A torch parameter (or its gradient) in the nnscratch layout of ``layer.params[key]``."""
    array = tensor.detach().numpy()
    return array.T if isinstance(layer, Dense) and key == "W" else array


def blur_kernel(layer, channels):
    """GaussianBlur as a depthwise torch kernel (C, 1, k, k): outer(taps, taps) per channel."""
    kernel = torch.tensor(np.outer(layer.taps, layer.taps), dtype=torch.float32)
    return kernel.expand(channels, 1, *kernel.shape).contiguous()


def torch_layer(layer, h, params, mask=None):
    """Apply ``layer``'s operation in torch to h; ``mask`` is a Dropout mask (None: eval mode)."""
    if isinstance(layer, Conv2D):
        padding = layer.padding if isinstance(layer.padding, (int, str)) else tuple(layer.padding)
        return F.conv2d(h, params["W"], params["b"], stride=layer.stride, padding=padding)
    if isinstance(layer, Conv2DTranspose):
        return F.conv_transpose2d(h, params["W"], params["b"], stride=layer.stride,
                                  padding=layer.padding)
    if isinstance(layer, Dense):
        return F.linear(h, params["W"], params["b"])
    if isinstance(layer, MaxPool2D):
        return F.max_pool2d(h, layer.kernel_size, layer.stride)
    if isinstance(layer, AvgPool2D):
        return F.avg_pool2d(h, layer.kernel_size, layer.stride)
    if isinstance(layer, ReLU):
        return F.relu(h)
    if isinstance(layer, LeakyReLU):
        return F.leaky_relu(h, layer.alpha)
    if isinstance(layer, Tanh):
        return torch.tanh(h)
    if isinstance(layer, Sigmoid):
        return torch.sigmoid(h)
    if isinstance(layer, Flatten):
        return torch.flatten(h, 1)
    if isinstance(layer, Reshape):
        return h.reshape(h.shape[0], *layer.shape)
    if isinstance(layer, Dropout):
        return h if mask is None else h * torch.from_numpy(mask)
    if isinstance(layer, GaussianBlur):
        return F.conv2d(h, blur_kernel(layer, h.shape[1]), padding=layer.radius,
                        groups=h.shape[1])
    raise TypeError(f"no torch equivalent for {layer!r}")


def check_layer(layer, x, seed=0):
    """Forward, input gradient and parameter gradients of ``layer`` equal torch's on x, under a
    random upstream gradient."""
    params = torch_params(layer)
    y = layer.forward(x)
    grad_y = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    grad_x = layer.backward(grad_y)

    x_t = torch.tensor(x, requires_grad=True)
    y_t = torch_layer(layer, x_t, params)
    y_t.backward(torch.from_numpy(grad_y))

    assert_close(y, y_t)
    assert_close(grad_x, x_t.grad)
    assert set(layer.grads) == set(layer.params)
    for key in layer.params:
        assert_close(layer.grads[key], as_nnscratch_layout(layer, key, params[key].grad))
    return y, grad_x, x_t.grad.numpy()


def images(shape, seed=0, low=-1.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


# --------------------------------------------------------------------------- single layers

CONV_CASES = [pytest.param(kernel, stride, padding, in_channels,
                           id=f"k{'x'.join(map(str, np.atleast_1d(kernel)))}-s{stride}"
                              f"-pad{padding}-c{in_channels}")
              for kernel in (3, (3, 2)) for stride in (1, 2) for padding in (0, 1, "same")
              for in_channels in (1, 3)
              if not (padding == "same" and stride != 1)]   # refused, see the next test


# torch warns that "same" with an even kernel width pads by copying; that is what we compare
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel,stride,padding,in_channels", CONV_CASES)
def test_conv2d(kernel, stride, padding, in_channels):
    layer = Conv2D(in_channels, 4, kernel, stride=stride, padding=padding, rng=1)
    y, _, _ = check_layer(layer, images((3, in_channels, 7, 9)))
    if padding == "same":
        assert y.shape[2:] == (7, 9)


def test_conv2d_same_refuses_stride_2():
    with pytest.raises(ValueError, match="same"):
        Conv2D(1, 2, 3, stride=2, padding="same")


def test_conv2d_non_contiguous_input():
    """A convolution fed the NCHW *view* another convolution returns (as in every CNN)."""
    first, second = Conv2D(2, 3, 3, padding=1, rng=1), Conv2D(3, 4, (3, 2), stride=2, rng=2)
    h = first.forward(images((3, 2, 9, 7)))
    check_layer(second, h)


@pytest.mark.parametrize("kernel, stride, padding", [(4, 2, 1), (3, 1, 0), ((3, 2), 2, 0),
                                                     (5, 3, 2)])
def test_conv_transpose2d(kernel, stride, padding):
    """W (C, O, kh, kw) is ``torch.nn.ConvTranspose2d.weight``; kernel 4, stride 2, padding 1 is
    the GAN generator's doubling layer."""
    layer = Conv2DTranspose(3, 4, kernel, stride=stride, padding=padding, rng=1)
    check_layer(layer, images((3, 3, 5, 4)))


def test_reshape():
    check_layer(Reshape((4, 3, 2)), images((3, 24)))


def test_dense():
    check_layer(Dense(7, 5, rng=1), images((3, 7)))


@pytest.mark.parametrize("kernel", [2, 3])
def test_maxpool2d(kernel):
    check_layer(MaxPool2D(kernel, stride=2), images((3, 2, 7, 9)))


@pytest.mark.parametrize("kernel", [2, 3])
def test_maxpool2d_ties_route_to_first_maximum(kernel):
    """Many exact ties (values from {0, 1, 2}), and with kernel 3 overlapping windows: every
    window sends its gradient to its first maximum in row-major order, as torch does."""
    x = np.random.default_rng(3).integers(0, 3, size=(3, 2, 7, 9)).astype(np.float32)
    layer = MaxPool2D(kernel, stride=2)
    _, grad_x, torch_grad_x = check_layer(layer, x)
    # the same elements receive gradient (exact: a tie routed elsewhere changes the support)
    np.testing.assert_array_equal(grad_x != 0, torch_grad_x != 0)


def test_maxpool2d_all_equal_window_routes_to_top_left():
    x = np.full((1, 1, 2, 2), 0.5, dtype=np.float32)
    layer = MaxPool2D(2)
    layer.forward(x)
    grad_x = layer.backward(np.full((1, 1, 1, 1), 3.0, dtype=np.float32))
    expected = np.array([[[[3.0, 0.0], [0.0, 0.0]]]], dtype=np.float32)
    np.testing.assert_array_equal(grad_x, expected)
    x_t = torch.tensor(x, requires_grad=True)
    F.max_pool2d(x_t, 2).backward(torch.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(x_t.grad.numpy(), expected)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1)])
def test_avgpool2d(kernel, stride):
    check_layer(AvgPool2D(kernel, stride=stride), images((3, 2, 7, 9)))


def activation_input(seed=0):
    """Normal values, some exact zeros (the kinks of ReLU / LeakyReLU) and saturating ones."""
    x = 3 * np.random.default_rng(seed).standard_normal((3, 2, 5, 7)).astype(np.float32)
    x[0, 0, 0, :4] = 0.0
    x[1, 1, 2, :4] = [-40.0, 40.0, -90.0, 90.0]
    return x


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(), LeakyReLU(alpha=0.2), Tanh(), Sigmoid()],
                         ids=["relu", "leaky_relu", "leaky_relu_0.2", "tanh", "sigmoid"])
def test_activation(layer):
    check_layer(layer, activation_input())


@pytest.mark.parametrize("contiguous", [True, False])
def test_flatten_order_matches_torch_flatten(contiguous):
    x = images((3, 4, 5, 6))
    if not contiguous:   # the same logical NCHW array, stored channels-last
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        assert not x.flags["C_CONTIGUOUS"]
    y, grad_x, _ = check_layer(Flatten(), x)
    np.testing.assert_array_equal(y, torch.flatten(torch.tensor(x), 1).numpy())
    assert grad_x.shape == x.shape


def test_dropout_eval_is_identity():
    x = images((3, 2, 5, 7))
    grad_y = images((3, 2, 5, 7), seed=1)
    layer = Dropout(0.5)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(layer.backward(grad_y), grad_y)
    np.testing.assert_array_equal(F.dropout(torch.tensor(x), 0.5, training=False).numpy(), x)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_dropout_training_statistics(p):
    """Inverted dropout: about 1 - p of the elements kept, each scaled by 1/(1 - p) (the same
    value torch uses), and the backward pass applies the same mask."""
    n = 200_000
    x = np.ones((4, 5, 100, 100), dtype=np.float32)
    layer = Dropout(p)
    y = layer.forward(x, training=True, rng=new_rng(0))
    torch.manual_seed(0)
    y_t = F.dropout(torch.ones(x.shape), p, training=True).numpy()
    tolerance = 5 * np.sqrt(p * (1 - p) / n)     # five standard deviations of the kept fraction
    for out in (y, y_t):
        kept = out != 0
        assert abs(kept.mean() - (1 - p)) < tolerance
        np.testing.assert_allclose(out[kept], np.float32(1 / (1 - p)), rtol=1e-6)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[y != 0][0], y_t[y_t != 0][0], rtol=1e-6)
    grad_y = images(x.shape, seed=2)
    np.testing.assert_array_equal(layer.backward(grad_y), grad_y * y)


@pytest.mark.parametrize("sigma,radius,shape", [(1.25, None, (2, 3, 11, 9)),
                                                (0.8, 2, (2, 3, 11, 9)),
                                                (1.25, None, (1, 2, 5, 6))],
                         ids=["sigma1.25", "sigma0.8_radius2", "image_smaller_than_kernel"])
def test_gaussian_blur(sigma, radius, shape):
    layer = GaussianBlur(sigma, radius=radius)
    assert layer.params == {}
    check_layer(layer, images(shape))


# --------------------------------------------------------------------------- losses

@pytest.mark.parametrize("dtype,tolerance", [(np.float32, RTOL), (np.float64, 1e-12)])
@pytest.mark.parametrize("scale", [1.0, 300.0], ids=["moderate", "large_logits"])
def test_softmax_cross_entropy(dtype, tolerance, scale):
    rng = np.random.default_rng(0)
    logits = (scale * rng.standard_normal((6, 10))).astype(dtype)
    labels = rng.integers(0, 10, size=6).astype(np.int64)
    losses, grad = softmax_cross_entropy(logits, labels)
    z = torch.tensor(logits, requires_grad=True)
    losses_t = F.cross_entropy(z, torch.tensor(labels), reduction="none")
    losses_t.sum().backward()
    assert np.isfinite(losses).all()
    assert_close(losses, losses_t, rtol=tolerance, atol=tolerance)
    assert_close(grad, z.grad, rtol=tolerance, atol=tolerance)


# --------------------------------------------------------------------------- whole models

def model_torch_params(model):
    return {layer.name: torch_params(layer) for layer in model.layers}


def torch_forward(model, x_t, params, masks=None):
    h = x_t
    for layer in model.layers:
        h = torch_layer(layer, h, params[layer.name], (masks or {}).get(layer.name))
    return h


# dnr_cnn at 14 x 14 (builder option): the same layers as at 28 x 28 at a fifth of the cost; the
# two poolings then see odd sizes (7 -> 3), which the floor rule of both libraries must agree on
SMALL = {"lenet": {}, "dnr_cnn": {"input_shape": (1, 14, 14)}}


def batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + model.input_shape, dtype=np.float32)
    y = rng.integers(0, 10, size=n).astype(np.int64)
    return x, y


def assert_param_grads_match(model, params):
    names = []
    for layer in model.layers:
        for key in layer.params:
            theirs = as_nnscratch_layout(layer, key, params[layer.name][key].grad)
            assert_close(layer.grads[key], theirs)
            names.append(f"{layer.name}.{key}")
    assert names   # the model has parameters, and every one was compared


@pytest.mark.parametrize("name", ["lenet", "dnr_cnn"])
def test_model_logits_and_loss_gradient(name):
    """Eval mode (dropout off): logits, per-sample cross-entropy and d(sum of losses)/dx."""
    model = zoo.build(name, **SMALL[name])
    x, y = batch(model)
    params = model_torch_params(model)
    x_t = torch.tensor(x, requires_grad=True)
    logits_t = torch_forward(model, x_t, params)
    losses_t = F.cross_entropy(logits_t, torch.tensor(y), reduction="none")
    losses_t.sum().backward()

    assert_close(model.logits(x), logits_t)
    losses, grad_x = model.loss_gradient(x, y)
    assert_close(losses, losses_t)
    assert_close(grad_x, x_t.grad)


def test_lenet_parameter_gradients():
    """compute_gradients: d(mean cross-entropy)/d(every parameter), lenet has no dropout."""
    model = zoo.build("lenet")
    x, y = batch(model)
    params = model_torch_params(model)
    loss_t = F.cross_entropy(torch_forward(model, torch.tensor(x), params), torch.tensor(y))
    loss_t.backward()
    loss, _ = model.compute_gradients(x, y, rng=None)
    np.testing.assert_allclose(loss, loss_t.item(), rtol=RTOL)
    assert_param_grads_match(model, params)


def test_dnr_cnn_parameter_gradients_with_dropout():
    """Training mode with dropout 0.5: the masks nnscratch drew (read back through the public
    backward of each Dropout layer, which multiplies by its mask) applied in torch give the same
    loss and parameter gradients."""
    model = zoo.build("dnr_cnn", **SMALL["dnr_cnn"])
    x, y = batch(model)
    dropouts = [layer for layer in model.layers if isinstance(layer, Dropout)]
    assert len(dropouts) == 2 and all(layer.p == 0.5 for layer in dropouts)
    shapes = dict(zip([layer.name for layer in model.layers], model.layer_shapes()))
    params = model_torch_params(model)

    loss, _ = model.compute_gradients(x, y, rng=new_rng(0))
    masks = {layer.name: layer.backward(np.ones((len(x),) + shapes[layer.name], np.float32))
             for layer in dropouts}
    for mask in masks.values():
        assert 0.3 < (mask != 0).mean() < 0.7       # dropout really was on

    loss_t = F.cross_entropy(torch_forward(model, torch.tensor(x), params, masks),
                             torch.tensor(y))
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=RTOL)
    assert_param_grads_match(model, params)


def test_dnr_cnn_without_dropout_matches_eval_mode():
    """Dropout(0.0) is allowed; a training pass (an rng is still required) is then the eval pass."""
    model = zoo.build("dnr_cnn", dropout=0.0, **SMALL["dnr_cnn"])
    x, y = batch(model)
    params = model_torch_params(model)
    loss_t = F.cross_entropy(torch_forward(model, torch.tensor(x), params), torch.tensor(y))
    loss_t.backward()
    loss, _ = model.compute_gradients(x, y, rng=new_rng(0))
    np.testing.assert_allclose(loss, loss_t.item(), rtol=RTOL)
    assert_param_grads_match(model, params)


# --------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "sgd_momentum": (lambda m: SGD(m, lr=0.1, momentum=0.9),
                     lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    "sgd_nesterov_weight_decay": (
        lambda m: SGD(m, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam_weight_decay": (
        lambda m: Adam(m, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
        lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
}


def run_two_steps(kind, shared_gradients):
    """Two optimizer steps on lenet in nnscratch and in torch.optim, from identical weights on
    identical batches. Returns the learning rate and, after each step, a list of
    (nnscratch parameter, torch parameter in nnscratch layout) copies. ``shared_gradients``:
    torch's optimizer gets nnscratch's gradients instead of those of its own autograd, which
    isolates the update rule from the gradients' rounding."""
    make_ours, make_torch = OPTIMIZERS[kind]
    model = zoo.build("lenet")
    params = model_torch_params(model)
    ours, theirs = make_ours(model), make_torch([p for d in params.values() for p in d.values()])
    initial = {name: value.copy() for name, value, _ in model.parameters()}
    after_each_step = []
    for step in range(2):
        x, y = batch(model, seed=10 + step)
        model.compute_gradients(x, y, rng=None)
        ours.step()
        theirs.zero_grad()
        if shared_gradients:
            for layer in model.layers:
                for key, grad in layer.grads.items():
                    grad_t = grad.T if isinstance(layer, Dense) and key == "W" else grad
                    params[layer.name][key].grad = torch.tensor(np.ascontiguousarray(grad_t))
        else:
            F.cross_entropy(torch_forward(model, torch.tensor(x), params),
                            torch.tensor(y)).backward()
        theirs.step()
        after_each_step.append(
            [(layer.params[key].copy(),
              as_nnscratch_layout(layer, key, params[layer.name][key]).copy())
             for layer in model.layers for key in layer.params])
    assert all(not np.array_equal(value, initial[name]) for name, value, _ in model.parameters())
    return ours.lr, after_each_step


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_optimizer_steps_match_torch(kind):
    """Two steps, each framework with its own gradients, give the same weights.

    SGD: the weights (scale ~0.1) agree to the module's float32 tolerance (the gradients' float32
    differences enter multiplied by lr). Adam divides by sqrt(v) + eps: for a gradient entry
    near eps = 1e-8 the step g / (|g| + eps) is sensitive to the last bits of g (measured: up to
    2% of lr on a few of the 431,080 weights), so Adam's weights are compared to 0.1 * lr
    absolute here, and its update rule to float32 precision in the next test.
    """
    lr, after_each_step = run_two_steps(kind, shared_gradients=False)
    for pairs in after_each_step:
        for ours, theirs in pairs:
            if kind.startswith("adam"):
                np.testing.assert_allclose(ours, theirs, rtol=0, atol=0.1 * lr)
            else:
                assert_close(ours, theirs)


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_optimizer_update_rule_matches_torch(kind):
    """Same gradients in, same weights out: only the update arithmetic differs (a few float32
    roundings per element), so SGD's weights agree to 1e-6 of their scale. Adam's step
    (g + wd p) / (|g + wd p| + eps) still amplifies one rounding of g + wd p where the two
    nearly cancel (measured: 6e-5 * lr on one weight), so Adam gets 1e-3 * lr absolute: a
    formula error (bias correction, eps inside the square root, weight decay) moves weights by
    a sizeable fraction of lr."""
    lr, after_each_step = run_two_steps(kind, shared_gradients=True)
    for pairs in after_each_step:
        for ours, theirs in pairs:
            if kind.startswith("adam"):
                np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-3 * lr)
            else:
                assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
