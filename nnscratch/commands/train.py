"""``nnscratch train``: a training run's settings, checked, then the run, in one folder.

The settings are the network's recipe (``zoo.RECIPES``) with the values given on the command
line in its place, the network's options, the data and the seed; config.json keeps them
(``run_folder``). Every check comes before the first write, so a refused run, a resume with
other settings included, leaves its folder as it was (or absent). One run at a time holds the
folder (``files.locked``); one that fails or is interrupted before its first checkpoint takes
back what it wrote, so that the same command, or ``--resume``, starts it again.

The options' ``--help`` shows each network's recipe, read from ``zoo.RECIPES`` itself: the
recipes have one source, and this module, imported only when ``train`` is the command, may
import the zoo (``nnscratch --help`` and ``nnscratch info`` never load it).
"""

import dataclasses
import json
import shlex
import time
from pathlib import Path

from nnscratch import backend, data, files, io, plots, zoo
from nnscratch.commands.options import (CLASS, COUNT, EPOCHS, FRACTION, PATH, PENALTY, RATE,
                                        SEED, SIGMA)
from nnscratch.commands.run_folder import (CONFIG, check_out, saved_config,
                                           settings_that_differ, unstarted)
from nnscratch.training import CHECKPOINT, fit_recipe

# The fields of a zoo.Recipe that the command line sets, and their options.
RECIPE_OPTIONS = {"optimizer": "--optimizer", "lr": "--lr", "momentum": "--momentum",
                  "weight_decay": "--weight-decay", "batch_size": "--batch-size",
                  "epochs": "--epochs"}
# The classes of each dataset, labelled 0 .. n-1: what --classes may name.
CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, "digits": 10}


def add_arguments(parser):
    parser.add_argument("--model", required=True, choices=tuple(zoo.BUILDERS),
                        help="the network (nnscratch/zoo.py); its recipe sets the training")
    parser.add_argument("--dataset", required=True, choices=data.DATASETS,
                        help="what to train on; all but digits need `nnscratch data fetch`")
    parser.add_argument("--out", required=True, type=PATH,
                        help="the run's folder: absent or empty, or a run to --resume")
    parser.add_argument("--epochs", type=EPOCHS, help=f"passes over the training images "
                                                      f"({recipe_default('epochs')})")
    parser.add_argument("--batch-size", type=COUNT, metavar="N", help=f"images per step "
                        f"({recipe_default('batch_size')})")
    parser.add_argument("--optimizer", choices=["sgd", "adam"],
                        help="other than the recipe's: give --lr too; of the recipe, only the "
                             f"batch size and epochs are kept ({recipe_default('optimizer')})")
    parser.add_argument("--lr", type=RATE,
                        help=f"the base learning rate ({recipe_default('lr')})")
    parser.add_argument("--momentum", type=FRACTION,
                        help=f"SGD's momentum, in [0, 1) ({recipe_default('momentum')})")
    parser.add_argument("--weight-decay", type=PENALTY, metavar="L2",
                        help=f"L2 penalty ({recipe_default('weight_decay')})")
    parser.add_argument("--early-stopping", type=COUNT, metavar="PATIENCE",
                        help="stop after PATIENCE epochs without a better validation "
                             "accuracy, keeping the best weights (default: no early stopping)")
    parser.add_argument("--dropout", type=FRACTION, metavar="P",
                        help="lenet: dropout P after the last pooling and dense500 (0.5 for "
                             "MC dropout; default none); dnr_cnn: its dropout rate (0.5)")
    parser.add_argument("--blur-sigma", type=SIGMA, metavar="SIGMA",
                        help="lenet: a Gaussian blur before each pooling (1.25 in Günther et "
                             "al.'s anti-aliasing experiment; default none)")
    parser.add_argument("--classes", type=CLASS, nargs="+", metavar="K",
                        help="keep these classes (at least two), relabelled 0.. (e.g. 6 7)")
    parser.add_argument("--limit", type=COUNT, metavar="N",
                        help="at most N training images, balanced over the classes (at least "
                             "one per class; default: all)")
    parser.add_argument("--seed", type=SEED, default=0,
                        help="fixes the initial weights, the shuffling and dropout (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars and no line per epoch; the lines that start "
                             "and end the run, and errors, remain")


def recipe_default(field):
    """"default: the recipe's: lenet 0.01, dnr_cnn 0.1, the others 0.001": ``field``'s value in
    each network's recipe (``zoo.RECIPES``), the most common one said once."""
    values = {name: getattr(recipe, field) for name, recipe in zoo.RECIPES.items()}
    listed = list(values.values())
    common = max(listed, key=lambda value: (listed.count(value), -listed.index(value)))
    named = [f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in values.items() if value != common]
    common = f"{common:g}" if isinstance(common, float) else common
    return f"default: the recipe's: {', '.join(named)}, the others {common}"


def run_recipe(args, saved=None):
    """The network's recipe (a ``zoo.Recipe``, checked) with the values given on the command
    line in its place.

    An ``--optimizer`` other than the recipe's keeps only its batch size and epochs (its rate,
    momentum, weight decay, schedule and warm-up were tuned for its own optimizer), so
    ``--lr`` is then required. Resuming, ``saved`` is the run's config.json: the epochs default
    to the run's own."""
    recipe = zoo.RECIPES[args.model]            # every zoo network has one
    overrides = {field: getattr(args, field) for field in RECIPE_OPTIONS
                 if getattr(args, field) is not None}
    if args.epochs is None and saved is not None:
        overrides["epochs"] = saved["recipe"]["epochs"]
    if args.optimizer not in (None, recipe.optimizer):
        if args.lr is None:
            raise ValueError(f"--optimizer {args.optimizer} replaces {args.model}'s recipe "
                             f"({recipe.optimizer} at lr {recipe.lr}): give its --lr too")
        overrides = {"momentum": 0.0, "weight_decay": 0.0, "schedule": None,
                     "warmup_steps": 0, **overrides}
    try:
        return dataclasses.replace(recipe, **overrides)
    except ValueError as error:     # the Recipe names its field: name the option instead
        field = str(error).split()[0]
        if field not in RECIPE_OPTIONS:
            raise
        raise ValueError(RECIPE_OPTIONS[field] + str(error)[len(field):]) from None


def run_config(args, recipe):
    """Everything that defines a training run, as its config.json keeps it: the network and
    its options, the data, the seed, early stopping, and ``recipe`` as a dict. Refuses the
    options that cannot apply, naming them. (Each option's own range is the parser's check.)"""
    model_options = {name: getattr(args, name) for name in ("dropout", "blur_sigma")
                     if getattr(args, name) is not None}
    for name in model_options:
        if name not in zoo.OPTIONS[args.model]:
            raise ValueError(f"--{name.replace('_', '-')} is not an option of {args.model}")
    classes = CLASSES[args.dataset]
    if args.classes is not None:
        if len(args.classes) < 2:
            raise ValueError(f"--classes needs at least two classes, got {args.classes}: a "
                             "classifier of one class always says 1")
        if len(set(args.classes)) != len(args.classes):
            raise ValueError(f"--classes names a class twice: {args.classes}")
        unknown = [c for c in args.classes if not 0 <= c < classes]
        if unknown:
            raise ValueError(f"--classes {' '.join(map(str, unknown))}: the classes of "
                             f"{args.dataset} are 0 to {classes - 1}")
        classes = len(args.classes)
    if args.limit is not None and args.limit < classes:
        raise ValueError(f"--limit {args.limit} is fewer images than the {classes} classes to "
                         f"learn: give at least {classes}, one image of each")
    return {"model": args.model, "model_options": model_options, "dataset": args.dataset,
            "seed": args.seed, "classes": args.classes, "limit": args.limit,
            "early_stopping": args.early_stopping, "recipe": dataclasses.asdict(recipe)}


def plan(args, out):
    """Check everything and prepare the run without writing a thing: returns the saved
    settings (or None), the config, the recipe, the data and the model."""
    check_out(out, args.resume)
    if args.gpu and backend.cupy is None:
        raise ValueError("--gpu needs CuPy and a CUDA GPU (pip install 'nnscratch[gpu]')")
    saved = saved_config(out, args.resume)
    recipe = run_recipe(args, saved)
    config = run_config(args, recipe)
    if saved is not None and not unstarted(out):
        differ = settings_that_differ(saved, config)
        if differ:
            raise ValueError(f"--resume with other settings than the run in {out}: "
                             + "; ".join(differ))
    train_data = data.load(args.dataset, "train-rest", classes=args.classes, limit=args.limit,
                           seed=args.seed)
    validation = data.load(args.dataset, "validation", classes=args.classes, seed=args.seed)
    shape = train_data[0].shape[1:]
    num_classes = len(args.classes) if args.classes else CLASSES[args.dataset]
    try:
        model = zoo.build(args.model, seed=args.seed, input_shape=shape,
                          num_classes=num_classes, **config["model_options"])
    except ValueError as error:
        raise ValueError(f"cannot build {args.model} for the {'x'.join(map(str, shape))} "
                         f"images of {args.dataset}: {error}") from None
    if args.gpu:
        model.to("gpu")
    return saved, config, recipe, (train_data, validation), model


def run(args):
    """Train a zoo model on a dataset into ``args.out``: model.npz, history.json,
    training_curves.png, config.json, and checkpoint.npz after every epoch.

    ``--resume`` continues the run in ``args.out`` with its saved settings; options given
    anew must agree with them, but for ``--epochs`` (more epochs at a constant rate are fine;
    under a schedule, ``fit`` refuses). Every check comes before the first write: a refused
    run leaves ``args.out`` as it was; a run that fails before its first checkpoint removes
    what it wrote, the folders it made included."""
    out = Path(args.out)
    saved, config, recipe, (train_data, validation), model = plan(args, out)
    made = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with files.locked(out):
            if saved_config(out, args.resume) != saved:
                raise ValueError(f"{out}/{CONFIG} changed while this run was starting: run "
                                 "the command again")
            check_out(out, args.resume)
            run_in(out, args, saved, config, recipe, model, train_data, validation)
    except BaseException:
        for folder in made:     # deepest first; those that hold anything stay
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def run_in(out, args, saved, config, recipe, model, train_data, validation):
    """The run itself, in the folder ``out`` that this process holds."""
    files.remove_unfinished(out)        # a killed write's; none is in progress: we hold out
    text = json.dumps(config, indent=2)
    from_checkpoint = (out / CHECKPOINT).exists()
    if not from_checkpoint and args.resume:
        print(f"no checkpoint in {out}: starting the run afresh")
    new_config = not from_checkpoint and not (out / CONFIG).exists()
    if not from_checkpoint:     # written first, so that a killed run resumes with its settings
        files.atomic_write(out / CONFIG, text)
    print(f"training {args.model} on {args.dataset}: {len(train_data[0])} images, validation "
          f"{len(validation[0])}; {json.dumps(config)}")
    began = time.perf_counter()
    try:
        # a checkpoint of another run, or one trained at other rates, is refused before any
        # write
        history = fit_recipe(model, recipe, train_data, validation=validation,
                             early_stopping=args.early_stopping, seed=args.seed,
                             checkpoint_dir=out, resume=from_checkpoint,
                             progress=None if not args.quiet else False)
    except BaseException:
        if new_config and not (out / CHECKPOINT).exists():   # no epoch done: nothing to keep
            (out / CONFIG).unlink(missing_ok=True)
        raise
    if from_checkpoint and config != saved:     # more epochs, now that fit has taken them
        files.atomic_write(out / CONFIG, text)
    io.save(model, out / "model.npz")
    files.atomic_write(out / "history.json", json.dumps(history, indent=2))
    plots.training_curves(history, out / "training_curves.png")
    accuracies = history["val_accuracy"]
    kept = accuracies.index(max(accuracies)) if args.early_stopping else -1
    print(f"done in {time.perf_counter() - began:.0f} s: validation accuracy "
          f"{accuracies[kept]:.4f} (the weights of epoch {history['epoch'][kept]}); wrote "
          f"{out}/model.npz, history.json, training_curves.png")


def interrupted(args, argv):
    """What to tell the user who interrupted ``nnscratch train ARGV``: how to go on."""
    if (Path(args.out) / CHECKPOINT).exists():
        again = shlex.join(["nnscratch", *argv] + ([] if args.resume else ["--resume"]))
        return f"interrupted; `{again}` continues from the last checkpoint"
    return "interrupted before the first epoch ended, so nothing was kept: run the command again"
