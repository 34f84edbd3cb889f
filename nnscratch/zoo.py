"""The five studies' networks and their training recipes, by name.

::

    model = build(name, seed=0, **options)     a Sequential; options: input_shape, num_classes
                                               and those in OPTIONS[name]
    recipe = RECIPES[name]                     a Recipe, for training.fit_recipe

Every builder takes ``input_shape`` (C, H, W) and ``num_classes`` with the paper's defaults,
and ``seed``, which fixes the initial weights. Where a paper leaves a choice open, the
builder's docstring says what we chose.
"""

import dataclasses
import math

import numpy as np

from nnscratch.checks import check_integer, check_real, check_seed
from nnscratch.layers import Conv2D, Dense, Dropout, Flatten, GaussianBlur, MaxPool2D, ReLU
from nnscratch.model import Sequential


def _flat_size(trunk, input_shape):
    """Width of the vector the convolutional trunk hands to the first Dense layer.

    ``Sequential.layer_shapes`` finds it; the trunk's layers get the names they will keep in
    the whole network, of which the trunk is the first part."""
    return math.prod(Sequential(trunk, input_shape=input_shape).layer_shapes()[-1])


def lenet(seed=0, input_shape=(1, 28, 28), num_classes=10, dropout=None, blur_sigma=None):
    """Caffe's LeNet, as Günther et al. use it.

    conv5x5x20, maxpool2, conv5x5x50, maxpool2, dense500, ReLU, dense10: no activation after
    the convolutions, no dropout. ``dropout=0.5`` adds dropout after the last pooling and after
    the ReLU of dense500 (Alshemali et al.'s MC-dropout LeNet). ``blur_sigma=1.25`` puts a fixed
    GaussianBlur before each pooling (Günther et al.'s anti-aliasing experiment). Either set
    to None or 0 adds nothing.
    """
    rng = np.random.default_rng(seed)

    def pool():
        return ([GaussianBlur(blur_sigma)] if blur_sigma else []) + [MaxPool2D(2)]

    trunk = [Conv2D(input_shape[0], 20, 5, rng=rng), *pool(), Conv2D(20, 50, 5, rng=rng), *pool()]
    flat_size = _flat_size(trunk, input_shape)
    if dropout:
        return Sequential(trunk + [
            Dropout(dropout), Flatten(), Dense(flat_size, 500, rng=rng), ReLU(), Dropout(dropout),
            Dense(500, num_classes, rng=rng)], input_shape=input_shape)
    return Sequential(trunk + [
        Flatten(), Dense(flat_size, 500, rng=rng), ReLU(), Dense(500, num_classes, rng=rng)],
        input_shape=input_shape)


def feinman_cnn(seed=0, input_shape=(1, 28, 28), num_classes=10):
    """Feinman et al.'s MNIST network (the comparison point of the KDE detector).

    conv3x3x64, ReLU, conv3x3x64, ReLU, maxpool2, dropout .5, dense128, ReLU, dropout .5,
    dense10; unpadded convolutions.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 64, 3, rng=rng), ReLU(), Conv2D(64, 64, 3, rng=rng), ReLU(),
             MaxPool2D(2)]
    return Sequential(trunk + [
        Dropout(0.5), Flatten(), Dense(_flat_size(trunk, input_shape), 128, rng=rng), ReLU(),
        Dropout(0.5), Dense(128, num_classes, rng=rng)], input_shape=input_shape)


def mnist_cnn_harms(seed=0, input_shape=(1, 28, 28), num_classes=10):
    """Harms et al.'s MNIST network (their Table 2).

    conv5x5x32, conv5x5x64, maxpool2, dropout .25, dense128, dropout .5, dense10. The table
    lists no activations; we put a ReLU after each convolution and after dense128, as in the
    Keras MNIST example their Keras model follows. Unpadded convolutions (Keras' default).
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 32, 5, rng=rng), ReLU(), Conv2D(32, 64, 5, rng=rng), ReLU(),
             MaxPool2D(2)]
    return Sequential(trunk + [
        Dropout(0.25), Flatten(), Dense(_flat_size(trunk, input_shape), 128, rng=rng), ReLU(),
        Dropout(0.5), Dense(128, num_classes, rng=rng)], input_shape=input_shape)


def cifar_cnn_harms(seed=0, input_shape=(3, 32, 32), num_classes=10):
    """Harms et al.'s CIFAR-10 network (their Table 3).

    conv5x5x32 x2, maxpool2, dropout .25, conv3x3x64 x2, maxpool2, dropout .25, dense512,
    dropout .5, dense10; ReLU after every convolution and after dense512 (activations are not
    listed; as for ``mnist_cnn_harms``), unpadded convolutions.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 32, 5, rng=rng), ReLU(), Conv2D(32, 32, 5, rng=rng), ReLU(),
             MaxPool2D(2), Dropout(0.25),
             Conv2D(32, 64, 3, rng=rng), ReLU(), Conv2D(64, 64, 3, rng=rng), ReLU(),
             MaxPool2D(2), Dropout(0.25)]
    return Sequential(trunk + [
        Flatten(), Dense(_flat_size(trunk, input_shape), 512, rng=rng), ReLU(), Dropout(0.5),
        Dense(512, num_classes, rng=rng)], input_shape=input_shape)


def dnr_cnn(seed=0, input_shape=(1, 28, 28), num_classes=10, dropout=0.5):
    """The Deep Neural Rejection MNIST network, as Thanthulage's report lists it.

    conv3x3x32 x2, maxpool2, dropout, conv3x3x64 x2, maxpool2, dropout, dense200, dense200,
    dense10; "same"-padded convolutions, ReLU after every convolution and hidden dense layer.
    3,136 features after flattening; parameter counts 320, 9248, 18496, 36928, 627400, 40200,
    2010. Trained with SGD lr 0.1, momentum 0.9, batch 128.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 32, 3, padding="same", rng=rng), ReLU(),
             Conv2D(32, 32, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2), Dropout(dropout),
             Conv2D(32, 64, 3, padding="same", rng=rng), ReLU(),
             Conv2D(64, 64, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2), Dropout(dropout)]
    return Sequential(trunk + [
        Flatten(), Dense(_flat_size(trunk, input_shape), 200, rng=rng), ReLU(),
        Dense(200, 200, rng=rng), ReLU(), Dense(200, num_classes, rng=rng)],
        input_shape=input_shape)


def binary_cnn(seed=0, input_shape=(1, 28, 28), num_classes=2):
    """Wang & Zhang's network for MNIST 6 vs 7: two logits, softmax cross-entropy.

    The paper says only "a two-layer convolutional model with max-pooling". We use
    conv5x5x32 (same), ReLU, maxpool2, conv5x5x64 (same), ReLU, maxpool2, dense128, ReLU,
    dense2.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 32, 5, padding="same", rng=rng), ReLU(), MaxPool2D(2),
             Conv2D(32, 64, 5, padding="same", rng=rng), ReLU(), MaxPool2D(2)]
    return Sequential(trunk + [
        Flatten(), Dense(_flat_size(trunk, input_shape), 128, rng=rng), ReLU(),
        Dense(128, num_classes, rng=rng)], input_shape=input_shape)


def cleverhans_cnn(seed=0, input_shape=(1, 28, 28), num_classes=2):
    """cleverhans' basic CNN (its tutorials' ``ModelBasicCNN``), Wang & Zhang's code's network.

    conv8x8x64 stride 2, ReLU; conv6x6x128 stride 2, ReLU; conv5x5x128, ReLU; dense2 (logits).
    On 28x28: 28 -> 14 -> 5 -> 1, flattened to 128. The first convolution is TensorFlow's
    "same" at stride 2, which pads (ceil(28 / 2) - 1) * 2 + 8 - 28 = 6 pixels, 3 on each side
    (so for any even H and W; an odd size would pad one more at the bottom/right, which this
    builder does not do); the others are unpadded. Parameter counts 4,160, 295,040, 409,728
    and 258 (num_classes 2): 709,186 in all. cleverhans draws every kernel from a normal of
    standard deviation 1 / sqrt(fan_in) (its "HeReLuNormalInitializer"); nnscratch's layers
    have one initialisation, Glorot-uniform, which we keep.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 64, 8, stride=2, padding=3, rng=rng), ReLU(),
             Conv2D(64, 128, 6, stride=2, rng=rng), ReLU(), Conv2D(128, 128, 5, rng=rng), ReLU()]
    return Sequential(trunk + [
        Flatten(), Dense(_flat_size(trunk, input_shape), num_classes, rng=rng)],
        input_shape=input_shape)


def substitute_mlp(seed=0, input_shape=(1, 28, 28), num_classes=2):
    """The substitute of Papernot et al.'s black-box attack ("Practical Black-Box Attacks
    against Machine Learning", 2017) as cleverhans' black-box tutorial builds it.

    dense200, ReLU, dense200, ReLU, dense2 on the flattened image. Parameter counts on 28x28
    (num_classes 2): 157,000, 40,200 and 402: 197,602 in all. Glorot-uniform initial weights
    (cleverhans: normal, standard deviation 1 / sqrt(fan_in); as for ``cleverhans_cnn``).
    """
    rng = np.random.default_rng(seed)
    return Sequential([
        Flatten(), Dense(math.prod(input_shape), 200, rng=rng), ReLU(),
        Dense(200, 200, rng=rng), ReLU(), Dense(200, num_classes, rng=rng)],
        input_shape=input_shape)


def small_cnn(seed=0, input_shape=(1, 8, 8), num_classes=10):
    """A small CNN for scikit-learn's 8x8 digits (the demo; not from a paper).

    conv3x3x16 (same), ReLU, maxpool2, dropout .25, dense64, ReLU, dense10.
    """
    rng = np.random.default_rng(seed)
    trunk = [Conv2D(input_shape[0], 16, 3, padding="same", rng=rng), ReLU(), MaxPool2D(2)]
    return Sequential(trunk + [
        Dropout(0.25), Flatten(), Dense(_flat_size(trunk, input_shape), 64, rng=rng), ReLU(),
        Dense(64, num_classes, rng=rng)], input_shape=input_shape)


BUILDERS = {"lenet": lenet, "feinman_cnn": feinman_cnn, "mnist_cnn_harms": mnist_cnn_harms,
            "cifar_cnn_harms": cifar_cnn_harms, "dnr_cnn": dnr_cnn, "binary_cnn": binary_cnn,
            "small_cnn": small_cnn, "cleverhans_cnn": cleverhans_cnn,
            "substitute_mlp": substitute_mlp}

# The options of each network beyond input_shape and num_classes, which all take.
OPTIONS = {"lenet": ("dropout", "blur_sigma"), "feinman_cnn": (), "mnist_cnn_harms": (),
           "cifar_cnn_harms": (), "dnr_cnn": ("dropout",), "binary_cnn": (), "small_cnn": (),
           "cleverhans_cnn": (), "substitute_mlp": ()}


def build(name, seed=0, **options):
    """The network ``name`` (one of ``BUILDERS``) with initial weights fixed by ``seed``.

    options: ``input_shape`` (C, H, W), ``num_classes`` (at least 2) and those the network
    lists in ``OPTIONS``; any other is refused, naming it."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(BUILDERS)}")
    check_seed(seed)
    for option in options:
        if option not in ("input_shape", "num_classes") + OPTIONS[name]:
            takes = ", ".join(OPTIONS[name]) or "none"
            raise ValueError(f"{option!r} is not an option of {name} (its own options: "
                             f"{takes}; all networks take input_shape and num_classes)")
    if "num_classes" in options:      # a softmax over one class always says 1
        check_integer(options["num_classes"], "num_classes", minimum=2)
    if "input_shape" in options:
        shape = options["input_shape"]
        if not (isinstance(shape, (tuple, list)) and len(shape) == 3):
            raise ValueError(f"input_shape must be (C, H, W), got {shape!r}")
        for size in shape:
            check_integer(size, f"input_shape {tuple(shape)}: every size")
    return BUILDERS[name](seed=seed, **options)


OPTIMIZERS = ("sgd", "adam")        # those optim.make_optimizer builds
SCHEDULES = (None, "cosine")        # those optim.make_schedule builds (None: a constant rate)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a network is trained: what ``training.fit_recipe`` needs besides model and data.

    optimizer     "sgd" or "adam" (PyTorch's update rules, ``nnscratch.optim``)
    lr            the base learning rate: positive and finite
    batch_size    images per step
    epochs        passes over the training set (the schedule spans them all)
    momentum      SGD's momentum, 0 for none; Adam has none
    weight_decay  L2 penalty: ``weight_decay * p`` added to each parameter's gradient
    schedule      None (a constant rate) or "cosine" (a half cosine from lr towards 0)
    warmup_steps  the rate rises linearly to lr over the first steps (0: no warm-up)

    Checked when made, ``dataclasses.replace(recipe, lr=...)`` included: a bad value raises a
    ValueError that names its field, before any training starts.
    """

    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str | None = None
    warmup_steps: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check_real(self.lr, "lr", positive=True)
        for field in ("batch_size", "epochs"):
            check_integer(getattr(self, field), field)
        for field in ("momentum", "weight_decay"):
            check_real(getattr(self, field), field)
        if self.optimizer == "adam" and self.momentum != 0:
            raise ValueError(f"momentum is an SGD option; Adam has none (got {self.momentum})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        check_integer(self.warmup_steps, "warmup_steps", minimum=0)


# How each network is trained: the paper's recipe where it gives one, else our choice (noted).
# lenet: Caffe's lenet_solver (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 64); Caffe
#   decays the rate with its "inv" policy, we with a cosine over the epochs (a constant rate
#   gave 98.95% after 10 epochs).
# dnr_cnn: the report's SGD lr 0.1, momentum 0.9, batch 128, plus a linear warm-up over the
#   first 300 steps (from the first step, lr 0.1 left the network at a constant output, loss
#   ln 10, for two whole epochs in our run) and a cosine decay over 15 epochs where the report
#   keeps the rate for 50 (at a constant 0.1 it reached 99.16% after 12 epochs; so, 99.52%).
# mnist_cnn_harms: Harms et al.'s Adam with Keras' default rate 0.001; batch 128 (not given).
# feinman_cnn: not given by the papers; Adam 0.001, batch 128, the rate falling along a
#   cosine over 20 epochs (a constant rate reached 99.08% after 12 epochs; the cosine, 99.40%).
# binary_cnn, cifar_cnn_harms: not given by the papers; Adam.
# small_cnn (the demo): Adam 0.005 with a cosine over 30 epochs: 97.5-98.6% on digits' test
#   split over seeds 0-2, where a constant rate for 15 epochs gave 96.4-98.1%.
# cleverhans_cnn: cleverhans' tutorials' Adam 0.001, batch 128, 6 epochs (Wang & Zhang's code;
#   its label smoothing of 0.1 is left to the study).
# substitute_mlp: cleverhans' black-box tutorial's Adam 0.001, batch 128, 10 epochs (per round
#   of substitute training: nnscratch.attacks.substitute.train_substitute).
RECIPES = {
    "lenet": Recipe(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=64,
                    epochs=12, schedule="cosine"),
    "dnr_cnn": Recipe(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, batch_size=128,
                      epochs=15, warmup_steps=300, schedule="cosine"),
    "mnist_cnn_harms": Recipe(optimizer="adam", lr=0.001, batch_size=128, epochs=12),
    "feinman_cnn": Recipe(optimizer="adam", lr=0.001, batch_size=128, epochs=20,
                          schedule="cosine"),
    "binary_cnn": Recipe(optimizer="adam", lr=0.001, batch_size=64, epochs=5),
    "cifar_cnn_harms": Recipe(optimizer="adam", lr=0.001, batch_size=128, epochs=30),
    "small_cnn": Recipe(optimizer="adam", lr=0.005, batch_size=32, epochs=30,
                        schedule="cosine"),
    "cleverhans_cnn": Recipe(optimizer="adam", lr=0.001, batch_size=128, epochs=6),
    "substitute_mlp": Recipe(optimizer="adam", lr=0.001, batch_size=128, epochs=10),
}
