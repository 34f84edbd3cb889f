"""Every layer: gradients against finite differences, the fast convolution and pooling against
slow loops, dtypes, inputs left untouched, bad input, empty batches. On every backend."""

import numpy as np
import pytest

import reference
from nnscratch.backend import device_of, to_numpy
from nnscratch.gradcheck import assert_gradients_close, check_layer
from nnscratch.layers import conv, conv_transpose
from nnscratch.layers import (AvgPool2D, Conv2D, Conv2DTranspose, Dense, Dropout, Flatten,
                              GaussianBlur, LeakyReLU, MaxPool2D, ReLU, Reshape, Sigmoid, Tanh)


def distinct_values(shape, seed):
    """Values at least 0.01 apart (a shuffled ramp): no max-pool ties within eps = 1e-6."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01


def away_from_zero(shape, seed):
    """Normal values pushed away from the ReLU kink: |x| >= 0.1."""
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.sign(x) * (0.1 + np.abs(x))


def normal(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


# (id, layer factory, input shape, input generator): awkward shapes on purpose
# (batch 3, odd H and W, non-square kernels, stride 2, padding 1, channels 1 and 3).
CASES = [
    ("conv_k3_c1", lambda: Conv2D(1, 2, 3, rng=1), (3, 1, 7, 9), normal),
    ("conv_k3x2_s2_p1", lambda: Conv2D(3, 4, (3, 2), stride=2, padding=1, rng=2),
     (3, 3, 9, 7), normal),
    ("conv_k5_same", lambda: Conv2D(3, 2, 5, padding="same", rng=3), (3, 3, 7, 5), normal),
    ("conv_k2_same_even", lambda: Conv2D(1, 3, 2, padding="same", rng=4), (3, 1, 5, 6), normal),
    ("conv_k2x3_s2_valid", lambda: Conv2D(3, 2, (2, 3), stride=2, rng=5), (3, 3, 7, 9), normal),
    ("conv_transpose_k3", lambda: Conv2DTranspose(2, 3, 3, rng=7), (3, 2, 5, 4), normal),
    ("conv_transpose_k4_s2_p1", lambda: Conv2DTranspose(3, 2, 4, stride=2, padding=1, rng=8),
     (3, 3, 4, 5), normal),
    ("conv_transpose_k3x2_s3", lambda: Conv2DTranspose(1, 2, (3, 2), stride=3, rng=9),
     (2, 1, 3, 4), normal),
    ("dense", lambda: Dense(7, 5, rng=6), (3, 7), normal),
    ("maxpool_k2", lambda: MaxPool2D(2), (3, 3, 7, 9), distinct_values),
    ("maxpool_k3_s2", lambda: MaxPool2D(3, stride=2), (3, 1, 9, 7), distinct_values),
    ("maxpool_k2_s1_overlap", lambda: MaxPool2D(2, stride=1), (3, 2, 5, 5), distinct_values),
    ("avgpool_k2", lambda: AvgPool2D(2), (3, 3, 7, 9), normal),
    ("avgpool_k3_s2", lambda: AvgPool2D(3, stride=2), (3, 1, 9, 7), normal),
    ("relu", lambda: ReLU(), (3, 2, 5, 7), away_from_zero),
    ("leaky_relu", lambda: LeakyReLU(0.1), (3, 2, 5, 7), away_from_zero),
    ("tanh", lambda: Tanh(), (3, 2, 5, 7), normal),
    ("sigmoid", lambda: Sigmoid(), (3, 2, 5, 7), normal),
    ("dropout", lambda: Dropout(0.5), (3, 2, 5, 7), normal),
    ("flatten", lambda: Flatten(), (3, 2, 5, 7), normal),
    ("reshape", lambda: Reshape((5, 2, 7)), (3, 70), normal),
    ("gaussian_blur", lambda: GaussianBlur(1.25), (3, 3, 9, 7), normal),
]


def build(factory, xp, dtype=np.float64):
    return factory().astype(dtype).to(device_of(xp.zeros(0)))


@pytest.mark.parametrize("factory, shape, make_input",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_gradients_match_finite_differences(xp, factory, shape, make_input):
    layer = build(factory, xp)
    x = xp.asarray(make_input(shape, seed=0))
    dropout_seed = 7 if isinstance(layer, Dropout) else None   # the same mask in every call
    comparisons = check_layer(layer, x, eps=1e-5, dropout_seed=dropout_seed)
    assert [c.name for c in comparisons] == ["x"] + list(layer.params)
    assert_gradients_close(comparisons)


def test_dropout_gradient_check_really_drops(xp):
    """The dropout case above must exercise a mask with zeros, not an identity."""
    layer = build(lambda: Dropout(0.5), xp)
    x = xp.asarray(normal((3, 2, 5, 7), 0))
    y = to_numpy(layer.forward(x, rng=xp.random.default_rng(7)))
    dropped = y == 0
    assert 0.3 < dropped.mean() < 0.7
    np.testing.assert_allclose(y[~dropped], 2 * to_numpy(x)[~dropped])


CONV_CASES = [(1, 2, (3, 3), 1, 0, (3, 1, 7, 9)), (3, 4, (3, 2), 2, 1, (3, 3, 9, 7)),
              (3, 2, (5, 5), 1, "same", (2, 3, 7, 5)), (2, 3, (2, 2), 1, "same", (2, 2, 5, 6)),
              (3, 2, (2, 3), 2, "valid", (3, 3, 8, 9))]


@pytest.mark.parametrize("group_bytes", [conv.GROUP_BYTES, 1], ids=["one_group", "per_image"])
@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, shape", CONV_CASES)
def test_conv_matches_naive_loops(xp, monkeypatch, group_bytes, c_in, c_out, kernel, stride,
                                  padding, shape):
    """Also with the batch split into groups of one image (``Conv2D.image_groups``)."""
    monkeypatch.setattr(conv, "GROUP_BYTES", group_bytes)
    layer = build(lambda: Conv2D(c_in, c_out, kernel, stride, padding, rng=0), xp)
    x = normal(shape, 1)
    y = layer.forward(xp.asarray(x))
    g = normal(y.shape, 2)
    grad_x = layer.backward(xp.asarray(g))
    W, b = to_numpy(layer.params["W"]), to_numpy(layer.params["b"])
    np.testing.assert_allclose(to_numpy(y), reference.conv2d(x, W, b, stride, layer.pads),
                               rtol=1e-12, atol=1e-12)
    ref_x, ref_W, ref_b = reference.conv2d_backward(x, W, g, stride, layer.pads)
    np.testing.assert_allclose(to_numpy(grad_x), ref_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.grads["W"]), ref_W, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.grads["b"]), ref_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("group_bytes", [conv.GROUP_BYTES, 1], ids=["one_group", "per_image"])
@pytest.mark.parametrize("c_in, c_out, kernel, stride, padding, shape",
                         [(2, 3, (3, 3), 1, 0, (3, 2, 5, 4)), (3, 2, (4, 4), 2, 1, (2, 3, 4, 5)),
                          (1, 2, (3, 2), 3, 0, (2, 1, 3, 4)), (2, 2, (5, 3), 2, 1, (2, 2, 3, 3))])
def test_conv_transpose_is_the_convolutions_input_gradient(xp, monkeypatch, group_bytes, c_in,
                                                           c_out, kernel, stride, padding, shape):
    """The duality in ``Conv2DTranspose``'s docstring, against the loops: its forward is the
    input gradient of the convolution whose weight is W read as (out=C, in=O), its input
    gradient that convolution's forward, its weight gradient that convolution's weight
    gradient with input and output gradient swapped."""
    monkeypatch.setattr(conv_transpose, "GROUP_BYTES", group_bytes)
    layer = build(lambda: Conv2DTranspose(c_in, c_out, kernel, stride, padding, rng=0), xp)
    layer.params["b"] = xp.asarray(normal((c_out,), 3))
    x = normal(shape, 1)
    y = layer.forward(xp.asarray(x))
    g = normal(y.shape, 2)
    grad_x = layer.backward(xp.asarray(g))
    W, b = to_numpy(layer.params["W"]), to_numpy(layer.params["b"])
    pads = ((padding, padding), (padding, padding))
    as_input_gradient = reference.conv2d_backward(np.zeros(y.shape), W, x, stride, pads)[0]
    np.testing.assert_allclose(to_numpy(y), as_input_gradient + b[:, None, None],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(grad_x), reference.conv2d(g, W, np.zeros(c_in), stride,
                                                                  pads), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.grads["W"]),
                               reference.conv2d_backward(g, W, x, stride, pads)[1],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(layer.grads["b"]), g.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("by_correlation", [False, True], ids=["col2im", "correlation"])
@pytest.mark.parametrize("c_in, c_out, kernel, padding, shape",
                         [(3, 2, (5, 5), "same", (2, 3, 7, 5)), (2, 3, (2, 2), "same", (2, 2, 5, 6)),
                          (1, 2, (3, 3), 0, (3, 1, 7, 9)), (2, 2, (3, 2), (2, 1), (2, 2, 6, 5))])
def test_conv_input_gradient_both_ways(xp, monkeypatch, by_correlation, c_in, c_out, kernel,
                                       padding, shape):
    """Stride 1 has two ways to dL/dx (``Conv2D.correlation_is_cheaper`` picks one): each,
    forced, matches the loops, whatever the padding up to the kernel less one."""
    monkeypatch.setattr(Conv2D, "correlation_is_cheaper", lambda self, shape: by_correlation)
    layer = build(lambda: Conv2D(c_in, c_out, kernel, 1, padding, rng=0), xp)
    x = normal(shape, 1)
    g = normal(layer.forward(xp.asarray(x)).shape, 2)
    ref_x, _, _ = reference.conv2d_backward(x, to_numpy(layer.params["W"]), g, 1, layer.pads)
    np.testing.assert_allclose(to_numpy(layer.backward(xp.asarray(g))), ref_x,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("k, stride, shape", [(2, 2, (3, 2, 7, 9)), (3, 2, (2, 3, 9, 7)),
                                              (2, 1, (2, 1, 5, 5)), (3, 3, (1, 2, 6, 6))])
def test_pooling_matches_naive_loops(xp, mode, k, stride, shape):
    """Max pooling on an input full of ties (values in {0, 1, 2}): the gradient of every window
    goes to its first maximum in row-major order, as in the loop reference (and PyTorch)."""
    layer = build(lambda: (MaxPool2D if mode == "max" else AvgPool2D)(k, stride), xp)
    x = np.random.default_rng(3).integers(0, 3, shape).astype(np.float64)
    y = layer.forward(xp.asarray(x))
    g = normal(y.shape, 4)
    ref_y, ref_grad = reference.pool2d(x, k, stride, g, mode)
    np.testing.assert_allclose(to_numpy(y), ref_y, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(to_numpy(layer.backward(xp.asarray(g))), ref_grad,
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factory, shape, make_input",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_dtype_is_kept_and_inputs_are_not_modified(xp, dtype, factory, shape, make_input):
    layer = build(factory, xp, dtype)
    x = xp.asarray(make_input(shape, 0).astype(dtype))
    x_before = to_numpy(x).copy()
    y = layer.forward(x, training=True, rng=xp.random.default_rng(0))
    g = xp.asarray(normal(y.shape, 1).astype(dtype))
    g_before = to_numpy(g).copy()
    grad_x = layer.backward(g)
    assert y.dtype == dtype and grad_x.dtype == dtype
    assert all(grad.dtype == dtype for grad in layer.grads.values())
    assert grad_x.shape == x.shape
    np.testing.assert_array_equal(to_numpy(x), x_before)
    np.testing.assert_array_equal(to_numpy(g), g_before)


def test_param_grads_false_leaves_weight_gradients_alone(xp):
    layer = build(lambda: Conv2D(3, 4, 3, rng=0), xp)
    x = xp.asarray(normal((2, 3, 6, 6), 0))
    layer.backward(xp.ones_like(layer.forward(x)))
    before = {k: to_numpy(v).copy() for k, v in layer.grads.items()}
    layer.forward(2 * x)
    layer.backward(xp.ones_like(layer.forward(2 * x)), param_grads=False)
    for key, value in before.items():
        np.testing.assert_array_equal(to_numpy(layer.grads[key]), value)


@pytest.mark.parametrize("factory, shape, message", [
    (lambda: Conv2D(3, 4, 3), (2, 3, 5), r"Conv2D layer.*expected input of shape \(N, 3, H, W\)"),
    (lambda: Conv2D(3, 4, 3), (2, 1, 5, 5), r"expected input of shape \(N, 3, H, W\).*got \(2, 1"),
    (lambda: Conv2D(3, 4, 5), (2, 3, 4, 9), r"H \+ padding >= 5"),
    (lambda: Conv2D(3, 4, (2, 5), padding=1), (2, 3, 4, 2), r"W \+ padding >= 5"),
    (lambda: Dense(8, 2), (2, 7), r"Dense layer.*\(N, 8\).*got \(2, 7\)"),
    (lambda: Dense(8, 2), (2, 2, 4), r"Dense layer.*\(N, 8\)"),
    (lambda: MaxPool2D(3), (2, 1, 2, 5), r"MaxPool2D layer.*H >= 3"),
    (lambda: AvgPool2D(2), (4, 4), r"AvgPool2D layer.*\(N, C, H, W\)"),
    (lambda: GaussianBlur(1.0), (4, 4, 4), r"GaussianBlur layer.*\(N, C, H, W\)"),
    (lambda: Flatten(), (4,), r"Flatten layer"),
    (lambda: Conv2DTranspose(3, 4, 3), (2, 2, 5, 5), r"Conv2DTranspose layer.*\(N, 3, H, W\)"),
    (lambda: Conv2DTranspose(3, 4, 3), (2, 3, 5), r"Conv2DTranspose layer"),
    (lambda: Reshape((4, 2, 2)), (3, 15), r"Reshape layer.*16 values an image.*got \(3, 15\)"),
    (lambda: Reshape((4, 2, 2)), (16,), r"Reshape layer"),
])
def test_bad_input_shape_is_a_clear_error(factory, shape, message):
    with pytest.raises(ValueError, match=message):
        factory().forward(np.zeros(shape, dtype=np.float32))


def test_error_names_the_layer():
    layer = Conv2D(3, 4, 3, name="conv_a")
    with pytest.raises(ValueError, match="Conv2D layer 'conv_a'"):
        layer.forward(np.zeros((1, 2, 8, 8), dtype=np.float32))


@pytest.mark.parametrize("factory, shape, make_input",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_empty_batch_gives_empty_result_of_the_right_shape(xp, factory, shape, make_input):
    layer = build(factory, xp, np.float32)
    one = layer.forward(xp.asarray(make_input((1,) + shape[1:], 0).astype(np.float32)))
    empty = layer.forward(xp.zeros((0,) + shape[1:], dtype=np.float32))
    assert empty.shape == (0,) + one.shape[1:]
    assert layer.backward(xp.zeros(empty.shape, dtype=np.float32)).shape == (0,) + shape[1:]


def test_conv_same_padding_keeps_size_and_needs_stride_one():
    for k in (2, 3, 4, 5):
        y = Conv2D(1, 1, k, padding="same").forward(np.zeros((1, 1, 7, 6), np.float32))
        assert y.shape == (1, 1, 7, 6)
    with pytest.raises(ValueError, match="stride 1"):
        Conv2D(1, 1, 3, stride=2, padding="same")


def test_dropout_modes():
    layer = Dropout(0.25)
    x = np.ones((200, 50), dtype=np.float32)
    assert layer.forward(x) is x                            # eval: the identity
    with pytest.raises(ValueError, match="needs an rng"):
        layer.forward(x, training=True)
    y = layer.forward(x, rng=np.random.default_rng(0))      # an rng alone turns it on (MC)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(y.mean() - 1) < 0.02                         # inverted: E[y] = x
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            Dropout(p)


def test_gaussian_blur_is_normalised_and_symmetric():
    layer = GaussianBlur(1.25)
    assert layer.radius == 4 and len(layer.taps) == 9
    np.testing.assert_allclose(layer.taps.sum(), 1.0)
    np.testing.assert_allclose(layer.taps, layer.taps[::-1])
    x = np.ones((1, 2, 15, 15))
    np.testing.assert_allclose(layer.forward(x)[:, :, 5:10, 5:10], 1.0)   # interior: constant
