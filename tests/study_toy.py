"""A toy study for the runner's tests: small_cnn on a few hundred of the embedded digits, in
three stages (data, train, evaluate), with a table, a figure and checks, in about a second.

What the tests watch: ``CALLS`` counts each stage's runs, ``RECEIVED`` keeps the cfg each
stage got and ``COMPUTED`` the output it returned. Two environment variables serve the
resume test: with NNSCRATCH_TOY_KILL set, the train stage SIGKILLs its own process right
after fit wrote the checkpoint of the first epoch; a train stage that finds a checkpoint says
"resuming" (ctx.log).
"""

import collections
import dataclasses
import os
import signal

import numpy as np
from matplotlib.figure import Figure

from nnscratch import attacks, data, training, zoo
from nnscratch.experiments.report import Row, Table
from nnscratch.experiments.runner import Stage

NAME = "toy"
TITLE = "A toy study: small_cnn on digits, clean and under FGSM"
FULL_RUN = "about 1 s on 2 CPU cores"

CALLS = collections.Counter()
RECEIVED = {}
COMPUTED = {}
PAPER_ACCURACY = 100.0          # the "paper" this toy reproduces is flawless


def config(quick):
    return {"train_images": 120 if quick else 200, "test_images": 60 if quick else 100,
            "epochs": 2 if quick else 3, "eps": 0.1,
            "unused": "a setting no stage declares"}


def note(stage, cfg, output):
    CALLS[stage] += 1
    RECEIVED[stage] = cfg
    COMPUTED[stage] = output
    return output


def load_data(cfg, inputs, ctx):
    x_train, y_train = data.load("digits", "train", limit=cfg["train_images"], seed=cfg["seed"])
    x_test, y_test = data.load("digits", "test", limit=cfg["test_images"], seed=cfg["seed"])
    return note("data", cfg, {"x_train": x_train, "y_train": y_train, "x_test": x_test,
                              "y_test": y_test, "classes": 10})


def kill_after_first_checkpoint():
    """Make fit's first checkpoint write this process's last act."""
    save = training.save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    training.save_checkpoint = save_then_die


def train(cfg, inputs, ctx):
    if os.environ.get("NNSCRATCH_TOY_KILL"):
        kill_after_first_checkpoint()
    if (ctx.checkpoint_dir / training.CHECKPOINT).exists():
        ctx.log("resuming from the checkpoint in " + str(ctx.checkpoint_dir))
    model = zoo.build("small_cnn", seed=cfg["seed"])
    recipe = dataclasses.replace(zoo.RECIPES["small_cnn"], epochs=cfg["epochs"])
    x, y = inputs["data"]["x_train"], inputs["data"]["y_train"]
    history = training.fit_recipe(model, recipe, (x, y), seed=cfg["seed"], progress=False,
                                  checkpoint_dir=ctx.checkpoint_dir, resume=True)
    return note("train", cfg, {"model": model, "loss": history["loss"]})


def evaluate(cfg, inputs, ctx):
    model = inputs["train"]["model"]
    x, y = inputs["data"]["x_test"], inputs["data"]["y_test"]
    x_adv = attacks.FGSM(cfg["eps"]).generate(model, x, y).x_adv
    probabilities = model.predict_proba(x).astype(np.float32)
    predictions = probabilities.argmax(axis=1)
    adversarial = model.predict(x_adv)
    return note("evaluate", cfg, {
        "predictions": predictions, "probabilities": probabilities, "x_adv": x_adv,
        "accuracy": float((predictions == y).mean()),
        "accuracy_under_fgsm": float((adversarial == y).mean()),
        "test_images": len(y)})


STAGES = [
    Stage("data", load_data, keys=("train_images", "test_images")),
    Stage("train", train, uses=("data",), keys=("epochs",)),
    Stage("evaluate", evaluate, uses=("data", "train"), keys=("eps",)),
]


def tables(config, outputs):
    result = outputs["evaluate"]
    rows = [Row("test accuracy", 100 * result["accuracy"], paper=PAPER_ACCURACY,
                reason=f"a toy: {config['epochs']} epochs on {config['train_images']} images"),
            Row(f"accuracy under FGSM (eps {config['eps']})",
                100 * result["accuracy_under_fgsm"]),
            Row("test images", result["test_images"], paper=config["test_images"], unit=""),
            Row("test images, as counted elsewhere", result["test_images"],
                paper=config["test_images"] + 10, unit="", tolerance=1)]
    return [Table("Table 1: small_cnn on digits", rows, note="scaled: a few hundred images")]


def figures(config, outputs):
    figure = Figure(figsize=(3, 2))
    axes = figure.subplots()
    result = outputs["evaluate"]
    axes.bar(["clean", "FGSM"], [result["accuracy"], result["accuracy_under_fgsm"]])
    return {"accuracy": figure}


def checks(config, outputs):
    result = outputs["evaluate"]
    return [("accuracy above chance", result["accuracy"] > 0.2),
            ("FGSM does not raise the accuracy",
             result["accuracy_under_fgsm"] <= result["accuracy"])]
