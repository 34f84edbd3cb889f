"""``nnscratch train``: a training run's settings, checked, then the run, in one folder.

The settings are the network's recipe (``zoo.RECIPES``) with the values given on the command
line in its place, the network's options, the data and the seed; config.json keeps them. Every
check comes before the first write, so a refused run, a resume with other settings included,
leaves its folder as it was.
"""

import dataclasses
import json
import time
from pathlib import Path

from nnscratch import backend, data, io, plots, zoo
from nnscratch.files import atomic_write
from nnscratch.training import CHECKPOINT, fit_recipe


def run_recipe(args, saved=None):
    """The network's recipe (a ``zoo.Recipe``, checked) with the values given on the command
    line in its place.

    An ``--optimizer`` other than the recipe's keeps only its batch size and epochs (its rate,
    momentum, weight decay, schedule and warm-up were tuned for its own optimizer), so
    ``--lr`` is then required. Resuming, ``saved`` is the run's config.json: the epochs default
    to the run's own."""
    recipe = zoo.RECIPES[args.model]            # every zoo network has one
    overrides = {field: getattr(args, field) for field in
                 ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs")
                 if getattr(args, field) is not None}
    if args.epochs is None and saved is not None:
        overrides["epochs"] = saved["recipe"]["epochs"]
    if args.optimizer not in (None, recipe.optimizer):
        if args.lr is None:
            raise ValueError(f"--optimizer {args.optimizer} replaces {args.model}'s recipe "
                             f"({recipe.optimizer} at lr {recipe.lr}): give its --lr too")
        overrides = {"momentum": 0.0, "weight_decay": 0.0, "schedule": None,
                     "warmup_steps": 0, **overrides}
    return dataclasses.replace(recipe, **overrides)


def run_config(args, recipe):
    """Everything that defines a training run, as its config.json keeps it: the network and
    its options, the data, the seed, early stopping, and ``recipe`` as a dict. Refuses the
    options that cannot apply, naming them."""
    model_options = {name: getattr(args, name) for name in ("dropout", "blur_sigma")
                     if getattr(args, name) is not None}
    for name in model_options:
        if name not in zoo.OPTIONS[args.model]:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of {args.model}")
    for flag, value in (("--limit", args.limit), ("--early-stopping", args.early_stopping)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    return {"model": args.model, "model_options": model_options, "dataset": args.dataset,
            "seed": args.seed, "classes": args.classes, "limit": args.limit,
            "early_stopping": args.early_stopping, "recipe": dataclasses.asdict(recipe)}


def saved_config(out):
    """The config.json of the run in ``out``, or None if it has none."""
    path = out / "config.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if "recipe" not in saved:
        raise SystemExit(f"{path} was written by an earlier nnscratch, which did not keep the "
                         "recipe apart: start the run afresh in another folder")
    return saved


def settings_that_differ(saved, config):
    """"lr 0.005 there, 0.01 now" for each setting but the epochs where ``config`` differs
    from the ``saved`` one; the recipe's fields go by their own names."""
    there, now = {**saved, **saved["recipe"]}, {**config, **config["recipe"]}
    return [f"{key} {there.get(key)} there, {value} now" for key, value in now.items()
            if key not in ("recipe", "epochs") and there.get(key) != value]


def train(args):
    """Train a zoo model on a dataset into ``args.out``: model.npz, history.json,
    training_curves.png, config.json, and checkpoint.npz after every epoch.

    ``--resume`` continues the run in ``args.out`` with its saved settings; options given
    anew must agree with them, but for ``--epochs`` (more epochs at a constant rate are fine;
    under a schedule, ``fit`` refuses). Every check comes before the first write: a refused
    run leaves ``args.out`` as it was."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise SystemExit(f"{out} exists and is not empty: pass --resume to continue the run in "
                         "it, or choose another --out")
    if args.gpu and backend.cupy is None:
        raise SystemExit("--gpu needs CuPy and a CUDA GPU (pip install 'nnscratch[gpu]')")
    saved = saved_config(out) if args.resume else None
    recipe = run_recipe(args, saved)
    config = run_config(args, recipe)
    differ = settings_that_differ(saved, config) if saved is not None else []
    if differ:
        raise SystemExit(f"--resume with other settings than the run in {out}: "
                         + "; ".join(differ))
    x, y = data.load(args.dataset, "train-rest", classes=args.classes, limit=args.limit,
                     seed=args.seed)
    validation = data.load(args.dataset, "validation", classes=args.classes, seed=args.seed)
    num_classes = len(args.classes) if args.classes else int(y.max()) + 1
    model = zoo.build(args.model, seed=args.seed, input_shape=x.shape[1:],
                      num_classes=num_classes, **config["model_options"])
    if args.gpu:
        model.to("gpu")
    text = json.dumps(config, indent=2)
    from_checkpoint = args.resume and (out / CHECKPOINT).exists()
    if not from_checkpoint:     # written first, so that a killed run resumes with its settings
        atomic_write(out / "config.json", text)
    print(f"training {args.model} on {args.dataset}: {len(x)} images, validation "
          f"{len(validation[0])}; {json.dumps(config)}")
    began = time.perf_counter()
    # a checkpoint of another run, or one trained at other rates, is refused before any write
    history = fit_recipe(model, recipe, (x, y), validation=validation,
                         early_stopping=args.early_stopping, seed=args.seed,
                         checkpoint_dir=out, resume=args.resume,
                         progress=None if not args.quiet else False)
    if from_checkpoint and config != saved:     # more epochs, now that fit has taken them
        atomic_write(out / "config.json", text)
    io.save(model, out / "model.npz")
    atomic_write(out / "history.json", json.dumps(history, indent=2))
    plots.training_curves(history, out / "training_curves.png")
    accuracies = history["val_accuracy"]
    kept = accuracies.index(max(accuracies)) if args.early_stopping else -1
    print(f"done in {time.perf_counter() - began:.0f} s: validation accuracy "
          f"{accuracies[kept]:.4f} (the weights of epoch {history['epoch'][kept]}); wrote "
          f"{out}/model.npz, history.json, training_curves.png")
