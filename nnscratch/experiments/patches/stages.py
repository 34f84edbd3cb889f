"""The stages of the adversarial-patch study: patches (Brown et al. 2017) made against
``dnr_cnn`` and shown to each reject option of the DNR study, random patches beside them, the
patch that knows DNR, and the report's network trained on CIFAR-10 (its accuracy only). The network and the fitted defences are the DNR study's own
stages, borrowed (``__init__.py``), so the two studies share them in the cache.

Choices left open by Thanthulage's report (it names the comparison, not its settings), and ours:
- Images: ``patch_images`` test images (``data.load``'s class-balanced sample), all of them
  (an image the network already misclassifies counts as it is). Accuracy as the DNR study
  counts it: a rejected patched image is a correct decision; the clean row (size 0) is plain
  accuracy.
- Control: the same patches before any step (uniform noise, ``steps=0``), so that what the
  optimisation adds is told from what covering part of a digit with noise does.
- Placement: "random" (anywhere the patch fits, drawn per image) or "fixed" at the image's
  centre, over the digit's strokes, where one patch does the most harm on MNIST.
- Per image: ``patch_steps`` signed steps of ``patch_step_size`` per image, each image its own
  patch, stopped once the network misclassifies it. Universal: one patch per size and placement
  optimised on ``universal_images`` images that neither the network nor the defences saw (the
  rest of DNR's half of the training set), ``universal_steps`` steps at fresh random places
  for "random" (Brown et al.'s expectation over placement), then pasted on the test images.
- Defence-aware: per image, random placement, the patch minimising Sotgiu et al.'s
  f = s_y - max_{l not y} s_l on DNR's model view (``loss="reject_aware"``), on the first
  ``aware_images`` of the study's test images; beside it, on the same images and places, the
  patch made against the network alone and shown to DNR (transfer).
"""

import numpy as np

from nnscratch import data, zoo
from nnscratch.attacks.patch import AdversarialPatch, paste
from nnscratch.backend import new_rng
from nnscratch.experiments.common import accuracy, mean, mnist, train
from nnscratch.experiments.dnr.stages import (dnr_training, fitted_svm_options, labels_of,
                                              reject_options)

MODES = ("per_image", "universal")
PLACEMENTS = ("random", "fixed")
SKIPPED = ("CIFAR-10 is not in the data cache (`nnscratch data fetch cifar10 --source "
           "cifar-10-python.tar.gz`): the CIFAR-10 network was not trained")


def centre(size, height, width):
    """The top-left corner [row, col] that centres a patch of ``size`` pixels."""
    return [(height - size) // 2, (width - size) // 2]


def patch(cfg, size, placement, image_side, universal=False, loss="ce", steps=None):
    """The AdversarialPatch of the study's settings (``steps``: default the study's)."""
    if steps is None:
        steps = cfg["universal_steps" if universal else "patch_steps"]
    location = "random" if placement == "random" else centre(size, image_side, image_side)
    return AdversarialPatch(size, location=location, universal=universal, loss=loss,
                            seed=cfg["seed"], steps=steps, step_size=cfg["patch_step_size"])


def accepted_right_or_rejected(labels, y):
    """The share of decisions (N,) that are right or a rejection (-1): accuracy under attack as
    the DNR study counts it."""
    return mean((labels == y) | (labels == -1))


def verdicts(options, model, x, y):
    """{option: (accuracy, rejected)} on patched images x (a rejection counts as correct)."""
    out = {}
    for name, option in options.items():
        labels = labels_of(option, model, x)
        out[name] = {"accuracy": accepted_right_or_rejected(labels, y),
                     "rejected": mean(labels == -1)}
    return out


def universal_training(cfg):
    """The ``universal_images`` training images neither the network nor the defences saw."""
    x, y = dnr_training(cfg, cfg["dnr_images"] + cfg["universal_images"])
    return x[cfg["dnr_images"]:], y[cfg["dnr_images"]:]


def places(cfg, size, placement, x):
    """(N, 2) where a universal patch is put on the test images x: the centre, or drawn (the
    patch's own rule for random places, from the seed after the one it was made with)."""
    return patch(cfg, size, placement, x.shape[-1]).locations(new_rng(cfg["seed"] + 1), len(x),
                                                              *x.shape[2:])


def patches(cfg, inputs, ctx):
    """Every reject option on the test images patched per image and universally, at every size
    and placement: out["MODE"]["PLACEMENT"] a list over sizes of {size, fooled (the network
    misclassifies), option: {accuracy, rejected}}; out["clean"] the options on the clean
    images; "universal_PLACEMENT_SIZE" the universal patches, "examples_MODE_PLACEMENT" the
    first ``example_images`` images patched at the largest size and "verdicts_MODE_PLACEMENT"
    (options, examples) the options' labels for them (-1 rejected)."""
    model = inputs["network"]["model"]
    options = reject_options(cfg, inputs)
    x, y = mnist("test", cfg["patch_images"])
    side = x.shape[-1]
    x_universal, y_universal = universal_training(cfg)
    out = {"clean": {}}
    for name, option in options.items():
        labels = labels_of(option, model, x)
        out["clean"][name] = {"accuracy": mean(labels == y), "rejected": mean(labels == -1)}
    for mode in MODES:
        out[mode] = {}
        for placement in PLACEMENTS:
            points = []
            for size in cfg["patch_sizes"]:
                if mode == "per_image":
                    x_adv = patch(cfg, size, placement, side).generate(model, x, y).x_adv
                else:
                    made = np.asarray(patch(cfg, size, placement, side, universal=True)
                                      .generate(model, x_universal, y_universal).info["patch"])
                    out[f"universal_{placement}_{size}"] = made
                    x_adv = paste(x, made, places(cfg, size, placement, x))
                x_adv = np.asarray(x_adv)
                points.append({"size": size, "fooled": mean(model.predict(x_adv) != y),
                               **verdicts(options, model, x_adv, y)})
                ctx.log(f"{mode} {placement} {size} px: fooled {points[-1]['fooled']:.3f}, "
                        f"DNR accuracy {points[-1]['dnr']['accuracy']:.3f}")
            out[mode][placement] = points
            shown = x_adv[:cfg["example_images"]]              # at the largest size
            out[f"examples_{mode}_{placement}"] = shown
            out[f"verdicts_{mode}_{placement}"] = np.stack(
                [labels_of(option, model, shown) for option in options.values()])
    out["y"] = y
    return out


def random_patches(cfg, inputs, ctx):
    """The control: every reject option on the test images with the per-image patches as they
    start, uniform noise in [0, 1] before any step, at every size and placement:
    out["PLACEMENT"] a list over sizes of {size, fooled, option: {accuracy, rejected}}."""
    model = inputs["network"]["model"]
    options = reject_options(cfg, inputs)
    x, y = mnist("test", cfg["patch_images"])
    out = {}
    for placement in PLACEMENTS:
        out[placement] = []
        for size in cfg["patch_sizes"]:
            noisy = np.asarray(patch(cfg, size, placement, x.shape[-1], steps=0)
                               .generate(model, x, y).x_adv)
            out[placement].append({"size": size, "fooled": mean(model.predict(noisy) != y),
                                   **verdicts(options, model, noisy, y)})
    return out


def defence_aware(cfg, inputs, ctx):
    """DNR against the patch that knows it and against the patch made on the network alone,
    per image, random placement (the same places for both), at every size: out["points"] a
    list over sizes of {size, aware: {accuracy, rejected}, transfer: ...}; "examples" the first
    ``example_images`` images with the aware patch of the largest size, "verdicts" (2,
    examples) the network's and DNR's labels for them (-1 rejected). The images: the first
    ``aware_images`` of the ``patches`` stage's, so the examples are the same digits."""
    model = inputs["network"]["model"]
    dnr = fitted_svm_options(cfg, inputs)["dnr"]
    x, y = mnist("test", cfg["patch_images"])
    x, y = x[:cfg["aware_images"]], y[:cfg["aware_images"]]
    side = x.shape[-1]
    out = {"points": []}
    for size in cfg["patch_sizes"]:
        aware = patch(cfg, size, "random", side, loss="reject_aware").generate(dnr.as_model(),
                                                                               x, y)
        blind = patch(cfg, size, "random", side).generate(model, x, y)
        point = {"size": size}
        for name, outcome in (("aware", aware), ("transfer", blind)):
            labels = np.asarray(dnr.predict(outcome.x_adv))
            point[name] = {"accuracy": accepted_right_or_rejected(labels, y),
                           "rejected": mean(labels == -1)}
        out["points"].append(point)
        ctx.log(f"{size} px: DNR accuracy {point['aware']['accuracy']:.3f} against the aware "
                f"patch, {point['transfer']['accuracy']:.3f} against the transferred one")
    shown = np.asarray(aware.x_adv[:cfg["example_images"]])        # at the largest size
    out["examples"] = shown
    out["verdicts"] = np.stack([np.asarray(model.predict(shown)), np.asarray(dnr.predict(shown))])
    return out


def cifar10_network(cfg, inputs, ctx):
    """dnr_cnn on CIFAR-10's (3, 32, 32) images (the report's "both the MNIST and Cifar10"),
    trained with the MNIST recipe for ``cifar10_epochs``; its test accuracy."""
    if not cfg["cifar10_cached"]:
        return {"skipped": SKIPPED}
    x, y = data.load("cifar10", "train", limit=cfg["cifar10_train_images"])
    model = zoo.build("dnr_cnn", seed=cfg["seed"], input_shape=x.shape[1:])
    history = train(model, "dnr_cnn", (x, y), ctx, cfg["cifar10_epochs"], cfg["seed"])
    x_test, y_test = data.load("cifar10", "test", limit=cfg["cifar10_test_images"])
    return {"test_accuracy": accuracy(model, x_test, y_test),
            "parameters": int(model.n_params),
            "training_seconds": float(sum(history["seconds"]))}

