"""The papers' networks: their shapes, parameter counts, and a short smoke training each."""

import numpy as np
import pytest

from nnscratch import zoo
from nnscratch.layers import Dropout, GaussianBlur
from nnscratch.training import fit_recipe


def striped_images(n, shape, num_classes, seed=0):
    """Images whose class is the position of a bright band, plus noise: learnable in a few
    steps by any of the zoo's networks."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    y = np.arange(n) % num_classes
    x = rng.random((n, c, h, w), dtype=np.float32) * 0.3
    band = h // num_classes
    for k in range(num_classes):
        x[y == k, :, k * band:(k + 1) * band, :] += 0.7
    return np.clip(x, 0, 1), y.astype(np.int64)


@pytest.mark.parametrize("name", sorted(zoo.BUILDERS))
def test_smoke_training_lowers_the_loss(name):
    model = zoo.build(name)
    classes = model.logits(np.zeros((1,) + model.input_shape, np.float32)).shape[1]
    x, y = striped_images(192, model.input_shape, classes)
    recipe = zoo.RECIPES[name]
    # the recipe, in small: batches of 64, and a warm-up (if any) of at most 3 of the 9 steps
    small = dict(recipe, batch_size=64, warmup_steps=min(recipe.get("warmup_steps", 0), 3))
    history = fit_recipe(model, small, (x, y), epochs=3, progress=False)
    assert history["loss"][-1] < history["loss"][0]
    assert np.isfinite(history["loss"]).all()


def test_build_is_deterministic_given_the_seed():
    a, b, c = zoo.build("lenet", seed=3), zoo.build("lenet", seed=3), zoo.build("lenet", seed=4)
    for (name, p, _), (_, q, _), (_, r, _) in zip(a.parameters(), b.parameters(),
                                                  c.parameters()):
        np.testing.assert_array_equal(p, q)
        if name.endswith(".W"):                          # biases start at zero
            assert not np.array_equal(p, r)


def test_paper_options():
    plain = zoo.build("lenet")
    assert not any(isinstance(layer, Dropout) for layer in plain.layers)
    mc = zoo.build("lenet", dropout=0.5)
    assert [i for i, layer in enumerate(mc.layers) if isinstance(layer, Dropout)] == [4, 8]
    blurred = zoo.build("lenet", blur_sigma=1.25)
    blurs = [layer for layer in blurred.layers if isinstance(layer, GaussianBlur)]
    assert len(blurs) == 2 and blurs[0].sigma == 1.25
    assert zoo.build("binary_cnn").layer_shapes()[-1] == (2,)
    assert zoo.build("cifar_cnn_harms").input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        zoo.build("resnet")
