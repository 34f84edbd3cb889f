"""Wang & Zhang's integrated model: its logits are the combiner's on the members' logits side by
side; its input gradient, logit gradient and Jacobian pass the model interface's
finite-difference checks (float64, gradcheck's default tolerances) through every member and its
preprocessing; bad combinations of members are refused; an attack targets the whole pipeline."""

import numpy as np
import pytest

from nnscratch.attacks import FGSM
from nnscratch.backend import device_of, to_numpy
from nnscratch.defenses import (BPDA, Blur, IntegratedModel, MedianFilter, Preprocessed,
                                combiner)
from nnscratch.gradcheck import (assert_gradients_close, check_jacobian, check_logit_gradient,
                                 check_loss_gradient)
from nnscratch.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from nnscratch.model import Sequential


def member(xp, seed, classes=2, dtype=np.float64):
    """A small network on (1, 8, 8) images with its own weights."""
    rng = np.random.default_rng(seed)
    model = Sequential([Conv2D(1, 3, 3, padding=1, rng=rng), ReLU(), MaxPool2D(2), Flatten(),
                        Dense(48, 6, rng=rng), Tanh(), Dense(6, classes, rng=rng)],
                       input_shape=(1, 8, 8), batch_size=3)
    return model.astype(dtype).to(device_of(xp.zeros(0)))


def integrated(xp, activation=True):
    """Three members (bare, blurred, behind a 2x2 median) and a 6 -> 5 -> 5 -> 2 combiner."""
    members = [member(xp, 1), Preprocessed(member(xp, 2), Blur(sigma=1.0)),
               Preprocessed(member(xp, 3), MedianFilter(size=(2, 2)))]
    head = combiner(6, 2, hidden=(5, 5), activation=activation, seed=4)
    return IntegratedModel(members, head.astype(np.float64).to(device_of(xp.zeros(0))))


def images(xp, n=4, seed=5):
    """Distinct pixel values, so that no median window holds a tie (the median's derivative is
    then defined: it picks one pixel)."""
    values = np.random.default_rng(seed).permutation(n * 64).reshape(n, 1, 8, 8) / (n * 64)
    return xp.asarray(values.astype(np.float64))


def test_logits_are_the_combiner_on_the_concatenated_member_logits(xp):
    model = integrated(xp)
    x = images(xp)
    h = np.concatenate([to_numpy(m.logits(x)) for m in model.members], axis=1)       # (4, 6)
    np.testing.assert_array_equal(to_numpy(model.member_logits(x)), h)
    np.testing.assert_allclose(to_numpy(model.logits(x)),
                               to_numpy(model.combiner.logits(xp.asarray(h))), rtol=1e-12)


@pytest.mark.parametrize("activation", [True, False])
def test_gradients_match_finite_differences(xp, activation):
    model = integrated(xp, activation)
    x = images(xp)
    assert_gradients_close(check_loss_gradient(model, x, xp.asarray(np.array([0, 1, 1, 0]))))
    w = xp.asarray(np.random.default_rng(6).standard_normal((4, 2)))
    assert_gradients_close(check_logit_gradient(model, x, w))
    assert_gradients_close(check_jacobian(model, x[:2]))


def test_an_attack_targets_the_whole_pipeline():
    model = integrated(np)
    x = images(np, 6)
    result = FGSM(eps=0.3).generate(model, x)
    grad = np.sign(model.loss_gradient(x, model.predict(x))[1])
    np.testing.assert_array_equal(result.x_adv, np.clip(x + 0.3 * grad, 0, 1))


def test_bad_combinations_are_refused():
    with pytest.raises(ValueError, match="different numbers of classes"):
        IntegratedModel([member(np, 1), member(np, 2, classes=3)], combiner(5))
    with pytest.raises(ValueError, match="share one network"):
        shared = member(np, 1)
        IntegratedModel([shared, Preprocessed(shared, Blur())], combiner(4))
    with pytest.raises(ValueError, match="combiner takes inputs of shape"):
        IntegratedModel([member(np, 1), member(np, 2)], combiner(6))
    with pytest.raises(ValueError, match="at least one member"):
        IntegratedModel([], combiner(2))
    with pytest.raises(TypeError, match="model interface"):
        IntegratedModel([lambda x: x], combiner(2))
    with pytest.raises(ValueError, match="hidden size"):
        combiner(4, hidden=(0,))


def test_bpda_keeps_the_output_and_passes_the_gradient_through_unchanged(xp):
    x = images(xp, 2)
    blur = Blur(sigma=2.0, truncate=4.0, mode="reflect")
    g = xp.asarray(np.random.default_rng(7).standard_normal(x.shape))
    np.testing.assert_array_equal(to_numpy(BPDA(blur)(x)), to_numpy(blur(x)))
    np.testing.assert_array_equal(to_numpy(BPDA(blur).vjp(x, g)), to_numpy(g))
    assert blur.exact and not BPDA(blur).exact
    with pytest.raises(TypeError, match="Transform"):
        BPDA(lambda x: x)
