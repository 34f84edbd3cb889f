"""The gradient checkers themselves: the directional check agrees with the element-wise one,
checks real-sized models in a few evaluations, and fails on a wrong gradient."""

import numpy as np
import pytest

from nnscratch import zoo
from nnscratch.model import LOGITS
from nnscratch.gradcheck import (assert_gradients_close, check_feature_gradient,
                                 check_logit_gradient, check_loss_gradient)

from test_model import AfterLinearMap, inputs, labels, small_model


class WrongPullback(AfterLinearMap):
    """A wrapper whose pullback forgets the transpose: M g where M^T g is right."""

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        outputs, pullback = self.model.vjp(self.transform(x, self.matrix.T), rng, taps)
        return outputs, lambda grads: self.transform(pullback(grads), self.matrix.T)


def lenet64(seed=0):
    return zoo.build("lenet", seed=seed).astype(np.float64)


def test_directional_check_agrees_where_the_elementwise_check_does(xp):
    model, x, y = small_model(xp), inputs(xp), labels(xp)
    assert_gradients_close(check_loss_gradient(model, x, y, directions=6))
    w = xp.asarray(np.random.default_rng(2).standard_normal((3, 4)))
    assert_gradients_close(check_logit_gradient(model, x, w, directions=6))


def test_directional_check_of_real_sized_models():
    """LeNet on 28 x 28 images, bare and after a fixed linear map of the whole image: 8
    directions each (16 passes) where the element-wise check would take 2 * 2 * 784."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 28, 28))
    y = np.array([3, 7])
    matrix = rng.standard_normal((784, 784)) / 28
    for model in (lenet64(), AfterLinearMap(lenet64(), matrix)):
        assert_gradients_close(check_loss_gradient(model, x, y, directions=8))
        w = rng.standard_normal((2, 500))
        assert_gradients_close(check_feature_gradient(model, x, "dense_1", w, directions=8))


def test_directional_check_catches_a_wrong_gradient():
    rng = np.random.default_rng(1)
    x, y = rng.random((2, 1, 28, 28)), np.array([1, 2])
    wrong = WrongPullback(lenet64(), rng.standard_normal((784, 784)) / 28)
    with pytest.raises(AssertionError, match="loss_gradient along 4 directions"):
        assert_gradients_close(check_loss_gradient(wrong, x, y, directions=4))


def test_elementwise_check_catches_a_wrong_gradient():
    model = WrongPullback(small_model(np), np.random.default_rng(4).standard_normal((112, 112)))
    with pytest.raises(AssertionError, match="loss_gradient"):
        assert_gradients_close(check_loss_gradient(model, inputs(np), labels(np)))
