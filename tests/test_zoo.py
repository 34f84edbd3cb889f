"""The papers' networks: their shapes, parameter counts, options, recipes, and a short smoke
training each."""

import dataclasses
import inspect
import math

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
    small = dataclasses.replace(recipe, batch_size=64, epochs=3,
                                warmup_steps=min(recipe.warmup_steps, 3))
    history = fit_recipe(model, small, (x, y), progress=False)
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


def test_every_network_states_its_options_and_has_a_recipe():
    for name, builder in zoo.BUILDERS.items():
        taken = set(inspect.signature(builder).parameters)
        assert taken == {"seed", "input_shape", "num_classes", *zoo.OPTIONS[name]}, name
    assert set(zoo.OPTIONS) == set(zoo.RECIPES) == set(zoo.BUILDERS)


@pytest.mark.parametrize("name, option", [("small_cnn", "dropout"), ("dnr_cnn", "blur_sigma"),
                                          ("lenet", "width")])
def test_build_refuses_an_option_the_network_does_not_take(name, option):
    with pytest.raises(ValueError, match=f"'{option}' is not an option of {name}"):
        zoo.build(name, **{option: 0.5})


@pytest.mark.parametrize("num_classes", [1, 0])
def test_build_refuses_fewer_than_two_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        zoo.build("small_cnn", num_classes=num_classes)


def test_the_first_dense_layer_takes_the_trunks_output():
    # _flat_size: the trunk's output, for other input shapes too
    model = zoo.build("dnr_cnn", input_shape=(3, 20, 20))
    assert model.layers[-5].params["W"].shape == (64 * 5 * 5, 200)
    assert model.layer_shapes()[-1] == (10,)
    layers = zoo.build("lenet").layers      # names as a single Sequential gives them
    assert [layer.name for layer in layers][:5] == ["conv2d_1", "maxpool2d_1", "conv2d_2",
                                                     "maxpool2d_2", "flatten_1"]


@pytest.mark.parametrize("field, value", [
    ("optimizer", "rmsprop"), ("lr", 0.0), ("lr", -0.1), ("lr", math.inf), ("lr", math.nan),
    ("batch_size", 0), ("batch_size", 2.5), ("epochs", 0), ("epochs", -1),
    ("momentum", -0.9), ("weight_decay", -1e-4), ("weight_decay", math.nan),
    ("schedule", "step"), ("warmup_steps", -1),
])
def test_a_recipe_refuses_a_bad_field_naming_it(field, value):
    with pytest.raises(ValueError, match=f"^{field} "):
        dataclasses.replace(zoo.RECIPES["lenet"], **{field: value})


def test_a_recipe_refuses_momentum_with_adam():
    with pytest.raises(ValueError, match="^momentum .*Adam has none"):
        zoo.Recipe(optimizer="adam", lr=0.001, batch_size=32, epochs=1, momentum=0.9)
    sgd = zoo.RECIPES["lenet"]
    assert dataclasses.replace(sgd, optimizer="adam", momentum=0.0).optimizer == "adam"


def test_recipes_are_frozen_and_keep_the_papers_values():
    lenet = zoo.RECIPES["lenet"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        lenet.lr = 0.1
    assert dataclasses.asdict(lenet) == {
        "optimizer": "sgd", "lr": 0.01, "batch_size": 64, "epochs": 12, "momentum": 0.9,
        "weight_decay": 5e-4, "schedule": "cosine", "warmup_steps": 0}
    assert zoo.RECIPES["dnr_cnn"].warmup_steps == 300


def test_wang_and_zhangs_code_networks_have_cleverhans_shapes_and_sizes():
    """cleverhans_cnn on 28x28: conv8x8x64 s2 pad 3 (28 -> 14): 64 * 8 * 8 + 64 = 4,160;
    conv6x6x128 s2 (14 -> 5): 128 * 64 * 36 + 128 = 295,040; conv5x5x128 (5 -> 1):
    128 * 128 * 25 + 128 = 409,728; dense 128 -> 2: 258. substitute_mlp: 784 * 200 + 200 =
    157,000; 200 * 200 + 200 = 40,200; 200 * 2 + 2 = 402."""
    cnn = zoo.build("cleverhans_cnn")
    assert cnn.layer_shapes()[:6:2] == [(64, 14, 14), (128, 5, 5), (128, 1, 1)]
    assert cnn.layer_shapes()[-1] == (2,)
    assert [p.size for _, p, _ in cnn.parameters()] == [4096, 64, 294912, 128, 409600, 128,
                                                         256, 2]
    mlp = zoo.build("substitute_mlp")
    assert mlp.layer_shapes() == [(784,), (200,), (200,), (200,), (200,), (2,)]
    assert mlp.n_params == 157_000 + 40_200 + 402
    assert cnn.n_params == 4_160 + 295_040 + 409_728 + 258
    assert zoo.build("substitute_mlp", input_shape=(1, 8, 8), num_classes=10).layer_shapes()[
        -1] == (10,)
    assert (zoo.RECIPES["cleverhans_cnn"].epochs, zoo.RECIPES["substitute_mlp"].epochs) == (6, 10)
