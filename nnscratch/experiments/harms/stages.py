"""The stages of the Harms, Harper & Sunkara reproduction (CSCE496 final project report, 2019:
bagging with noise and adversarial retraining against FGSM, BIM and L-BFGS); ``__init__.py``
declares them, their settings and their order.

Every stage runs once per dataset (MNIST, CIFAR-10) through ``for_dataset``: it reads its
settings without the dataset's prefix (``mnist_epochs`` as ``epochs``) and the earlier stages
of its dataset without it (``mnist_original`` as ``original``). A CIFAR-10 stage whose
``cached`` setting is false (CIFAR-10 is not in the data cache) returns ``{"skipped": why}``.

Choices the report leaves open, and ours:

- Training (section 5.4: Adam at 0.001, cross-entropy, "early stopping by evaluating the
  accuracy"; no batch size): the zoo recipe of the network in batches of ``batch_size`` (128
  in the full run, the zoo's; the quick run's smaller batches take more steps) for at most
  ``epochs`` epochs on the training set less the 5,000 validation images, stopped after
  ``patience`` epochs without a better validation accuracy, the weights of the best epoch
  kept. Every ensemble member is trained so too, on its noisy bootstrap replicate
  (``BaggingNoiseEnsemble``: noise redrawn per member, clipped to [0, 1]) of that training set.
- The noise (the report gives no sigma): ``noise_sigma`` 0.1, a tenth of the pixel range,
  enough to make every replicate differ, small beside the contrast of a digit's strokes.
- The ensemble combines its members by their mean softmax (its ``predict``); the majority vote
  of all members (the report's other option) is reported beside it.
- The attacks, with the true labels y of their formulas (section 5.1): FGSM eps ``fgsm_eps``;
  BIM eps ``bim_eps``, step alpha ``bim_step``, ``bim_steps`` steps (cleverhans' defaults of
  the time for MNIST: 0.3, 0.05, 10); L-BFGS targeted (the report's Figure 5 targets a 6) at a
  class drawn at random from the other nine with the run's seed, on the first
  ``lbfgs_images`` test images only, with ``lbfgs_search_steps`` runs of at most
  ``lbfgs_iterations`` iterations from c = ``lbfgs_initial_const``, ``lbfgs_batch`` images
  minimised as one problem (``LBFGS(batch_size=...)``, as cleverhans batches it). CIFAR-10
  (no budget given): eps 8/255, the usual one, BIM steps of 2/255.
- Adversarials are made on the original model and on the ``ith_member``-th member (1-based as
  the report's i = 6 for MNIST, the 3rd for CIFAR-10) and transferred to the ensembles
  (Figures 7-10).
- Adversarial retraining (section 6: adversarials "generated after each epoch", "normal loss
  value and the adversarial loss value"): ``AdversarialRetraining`` with weight
  ``retrain_alpha`` on the clean loss, from a copy of the original model (its weights; a fresh
  Adam), for ``retrain_epochs`` epochs on ``retrain_images`` training images (None: the
  original's). Table 4's "adversarial data" is scored both ways the report leaves open:
  white-box (made on the retrained model) and transferred from the original.
"""

import dataclasses

import numpy as np

from nnscratch import data, metrics, zoo
from nnscratch.attacks import BIM, FGSM, LBFGS
from nnscratch.defenses import AdversarialRetraining, BaggingNoiseEnsemble
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy, clone
from nnscratch.training import fit_recipe

ATTACKS = ("fgsm", "bim", "lbfgs")
SOURCES = ("original", "member")        # the models adversarials are made on
SKIPPED = ("CIFAR-10 is not in the data cache (nnscratch data fetch cifar10 --source "
           "cifar-10-python.tar.gz)")


def for_dataset(dataset, run):
    """The stage ``run(dataset, cfg, inputs, ctx)`` of ``dataset``, its settings and inputs
    read without the prefix "DATASET_"; ``{"skipped": why}`` when the dataset is not cached."""
    prefix = f"{dataset}_"

    def stage(cfg, inputs, ctx):
        cfg = {key.removeprefix(prefix): value for key, value in cfg.items()}
        if cfg.get("cached") is False:
            return {"skipped": SKIPPED}
        return run(dataset, cfg, {name.removeprefix(prefix): output
                                  for name, output in inputs.items()}, ctx)

    stage.__name__ = f"{prefix}{run.__name__}"
    return stage


def training_set(dataset, cfg, limit=None):
    """The training set less the validation images: ``limit`` of them (default
    ``train_images``; None: all), a sample balanced over the classes."""
    return data.load(dataset, split="train-rest", limit=limit or cfg["train_images"])


def validation_set(dataset, cfg):
    return data.load(dataset, split="validation", limit=cfg["validation_images"])


def test_set(dataset, cfg):
    return data.load(dataset, split="test", limit=cfg["test_images"])


def recipe(cfg, epochs):
    """The network's zoo recipe (Adam 0.001) with batches of ``batch_size``, for ``epochs``
    epochs."""
    return dataclasses.replace(zoo.RECIPES[cfg["model"]], batch_size=cfg["batch_size"],
                               epochs=epochs)


def attack_of(name, cfg):
    """FGSM or BIM with the study's settings, or the targeted L-BFGS."""
    if name == "fgsm":
        return FGSM(eps=cfg["fgsm_eps"])
    if name == "bim":
        return BIM(cfg["bim_eps"], step=cfg["bim_step"], steps=cfg["bim_steps"])
    return LBFGS(targeted=True, initial_const=cfg["lbfgs_initial_const"],
                 binary_search_steps=cfg["lbfgs_search_steps"],
                 max_iterations=cfg["lbfgs_iterations"], batch_size=cfg["lbfgs_batch"])


def lbfgs_targets(y, classes, seed):
    """(N,) a target for each label of y, uniform over the other ``classes - 1`` classes."""
    shift = np.random.default_rng(seed).integers(1, classes, size=len(y))
    return (y + shift) % classes


def rebuilt(output):
    """The ensemble of the ``ensemble`` stage's output, from its stored members."""
    members = [output[f"member_{m}"] for m in range(len(output["member_accuracy"]))]
    return BaggingNoiseEnsemble.from_members(members, output["noise_sigma"], output["seed"])


def summary(history):
    """What a training left: epochs run, the best epoch (1-based), seconds."""
    return {"epochs_run": len(history["epoch"]),
            "best_epoch": int(np.argmax(history["val_accuracy"])) + 1,
            "training_seconds": float(sum(history["seconds"]))}


# ------------------------------------------------------------------ training

def original(dataset, cfg, inputs, ctx):
    """The original model, trained on the whole training set (less the validation images)."""
    model = zoo.build(cfg["model"], seed=cfg["seed"])
    history = fit_recipe(model, recipe(cfg, cfg["epochs"]), training_set(dataset, cfg),
                         seed=cfg["seed"], validation=validation_set(dataset, cfg),
                         early_stopping=cfg["patience"], checkpoint_dir=ctx.checkpoint_dir,
                         resume=True)
    x, y = test_set(dataset, cfg)
    return {"model": model, "test_accuracy": accuracy(model, x, y), **summary(history)}


def ensemble(dataset, cfg, inputs, ctx):
    """The ``n_models`` members of the noise-bagging ensemble, each checkpointed in its own
    folder; stored as member_0, member_1, ... (``rebuilt`` makes the ensemble again)."""
    bagging = BaggingNoiseEnsemble(lambda seed: zoo.build(cfg["model"], seed=seed),
                                   cfg["n_models"], cfg["noise_sigma"], seed=cfg["seed"])
    x, y = training_set(dataset, cfg)
    histories = bagging.fit(x, y, recipe(cfg, cfg["epochs"]), checkpoint_dir=ctx.checkpoint_dir,
                            validation=validation_set(dataset, cfg),
                            early_stopping=cfg["patience"])
    x_test, y_test = test_set(dataset, cfg)
    out = {f"member_{m}": member for m, member in enumerate(bagging.members)}
    trained = [summary(history) for history in histories]
    return {**out, "noise_sigma": bagging.noise_sigma, "seed": bagging.seed,
            "member_accuracy": [accuracy(member, x_test, y_test) for member in bagging.members],
            "epochs_run": [t["epochs_run"] for t in trained],
            "training_seconds": float(sum(t["training_seconds"] for t in trained))}


def retrained(kind):
    """The stage that retrains a copy of the original model on its ``kind`` adversarials of the
    training set, made afresh before every epoch (Table 4)."""

    def run(dataset, cfg, inputs, ctx):
        model = clone(inputs["original"]["model"])
        objective = AdversarialRetraining(attack_of(kind, cfg), alpha=cfg["retrain_alpha"])
        history = fit_recipe(model, recipe(cfg, cfg["retrain_epochs"]),
                             training_set(dataset, cfg, cfg["retrain_images"]), seed=cfg["seed"],
                             objective=objective, checkpoint_dir=ctx.checkpoint_dir, resume=True)
        x, y = test_set(dataset, cfg)
        return {"model": model, "test_accuracy": accuracy(model, x, y),
                "training_seconds": float(sum(history["seconds"]))}

    run.__name__ = f"retrained_{kind}"
    return run


# ------------------------------------------------------------------ attacks and ensembles

def attacks(source):
    """The stage that makes FGSM, BIM and L-BFGS adversarials of the test images on ``source``:
    the original model, or the ``ith_member``-th member of the ensemble."""

    def run(dataset, cfg, inputs, ctx):
        model = (inputs["original"]["model"] if source == "original"
                 else inputs["ensemble"][f"member_{cfg['ith_member'] - 1}"])
        x, y = test_set(dataset, cfg)
        out, on_source = {}, {}
        for name in ("fgsm", "bim"):
            outcome = evaluate_attack(model, attack_of(name, cfg), x, y)
            out[name], on_source[name] = outcome.x_adv, metrics.accuracy(y, outcome.adversarial)
        x, y = x[:cfg["lbfgs_images"]], y[:cfg["lbfgs_images"]]
        targets = lbfgs_targets(y, int(model.logits(x[:1]).shape[1]), cfg["seed"])
        outcome = evaluate_attack(model, attack_of("lbfgs", cfg), x, y, target=targets)
        ctx.log(f"L-BFGS: {outcome.seconds / len(x):.2f} s an image, "
                f"{outcome.success.mean():.0%} reached their target")
        on_source["lbfgs"] = metrics.accuracy(y, outcome.adversarial)
        l2 = outcome.norms["l2"][outcome.success]
        return {**out, "lbfgs": outcome.x_adv, "lbfgs_target": targets,
                "lbfgs_success": outcome.success, "on_source": on_source,
                "lbfgs_seconds_per_image": outcome.seconds / len(x),
                "lbfgs_l2": float(l2.mean()) if len(l2) else float("nan")}

    run.__name__ = f"attacks_{source}"
    return run


def input_sets(x, y, inputs):
    """{name: (images, labels)}: "clean", and "SOURCE/ATTACK" for each source and attack."""
    sets = {"clean": (x, y)}
    for source in SOURCES:
        made = inputs[f"attacks_{source}"]
        sets.update({f"{source}/{name}": (made[name], y[:len(made[name])]) for name in ATTACKS})
    return sets


def sizes(dataset, cfg, inputs, ctx):
    """Figures 7-8: on every input set ("sets": ``input_sets``), the accuracy of the ensembles
    of the first k members (k = 1..M, mean softmax: ``ensemble``), of the majority vote of all
    M (``vote``), of the original model (``original``) and of the ``ith_member``-th member
    (``member``); and the stored members rebuilt into the ensemble on the clean images."""
    bagging = rebuilt(inputs["ensemble"])
    chosen = bagging.members[cfg["ith_member"] - 1]
    x, y = test_set(dataset, cfg)
    sets = {}
    for name, (images, labels) in input_sets(x, y, inputs).items():
        probabilities = np.stack([np.asarray(m.predict_proba(images)) for m in bagging.members])
        means = np.cumsum(probabilities, axis=0)               # (M, N, K): k times the mean
        votes = probabilities.argmax(axis=2)                   # (M, N)
        counts = (votes[:, :, None] == np.arange(probabilities.shape[2])).sum(axis=0)
        sets[name] = {"ensemble": [metrics.accuracy(labels, mean.argmax(axis=1))
                                  for mean in means],
                     "vote": metrics.accuracy(labels, counts.argmax(axis=1)),
                     "original": accuracy(inputs["original"]["model"], images, labels),
                     "member": accuracy(chosen, images, labels)}
    # the stored members rebuilt into the ensemble, as a user would deploy it
    return {"sets": sets, "ensemble_predict": accuracy(bagging, x, y),
            "ensemble_vote": metrics.accuracy(y, bagging.predict_vote(x))}


def retraining(dataset, cfg, inputs, ctx):
    """Table 4 (5 for CIFAR-10): each retrained model and the original on the clean test images,
    under FGSM and BIM made on it (white-box) and made on the original (transferred)."""
    x, y = test_set(dataset, cfg)
    made = inputs["attacks_original"]
    out = {}
    for network in ("original", "retrained_fgsm", "retrained_bim"):
        model = inputs[network]["model"]
        row = {"clean": accuracy(model, x, y)}
        for name in ("fgsm", "bim"):
            if network == "original":
                row[f"white-box {name}"] = made["on_source"][name]
            else:
                outcome = evaluate_attack(model, attack_of(name, cfg), x, y)
                row[f"white-box {name}"] = metrics.accuracy(y, outcome.adversarial)
            row[f"transferred {name}"] = accuracy(model, made[name], y)
        out[network] = row
    return out


def examples(dataset, cfg, inputs, ctx):
    """Figures 4-5: the first test image of ``example_digit``, its FGSM and BIM adversarials
    and its L-BFGS adversarial targeted at ``example_target``, made on the original model, with
    the classes the original gives them."""
    model = inputs["original"]["model"]
    x, y = test_set(dataset, cfg)
    x, y = x[y == cfg["example_digit"]][:1], y[y == cfg["example_digit"]][:1]
    target = np.full(1, cfg["example_target"])
    out = {"clean": x}
    for name in ATTACKS:
        out[name] = np.asarray(attack_of(name, cfg).generate(
            model, x, y, target=target if name == "lbfgs" else None).x_adv)
    out["predicted"] = {name: int(model.predict(out[name])[0]) for name in ("clean",) + ATTACKS}
    return out
