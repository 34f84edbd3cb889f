"""``nnscratch train``: a training run's settings, checked, then the run, in one folder.

The settings are the network's recipe (``zoo.RECIPES``) with the values given on the command
line in its place, the network's options, the data and the seed; config.json keeps them. Every
check comes before the first write, so a refused run, a resume with other settings included,
leaves its folder as it was (or absent). One run at a time holds the folder
(``files.locked``); one that fails or is interrupted before its first checkpoint takes back
what it wrote, so that the same command, or ``--resume``, starts it again.
"""

import dataclasses
import json
import shlex
import time
from pathlib import Path

from nnscratch import backend, catalog, data, files, io, plots, zoo
from nnscratch.training import CHECKPOINT, fit_recipe

CONFIG = "config.json"
CONFIG_KEYS = ("model", "model_options", "dataset", "seed", "classes", "limit",
               "early_stopping", "recipe")
# The fields of a zoo.Recipe that the command line sets, and their options.
RECIPE_OPTIONS = {"optimizer": "--optimizer", "lr": "--lr", "momentum": "--momentum",
                  "weight_decay": "--weight-decay", "batch_size": "--batch-size",
                  "epochs": "--epochs"}


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
    classes = catalog.CLASSES[args.dataset]
    if args.classes is not None:
        if len(args.classes) < 2:
            raise ValueError(f"--classes needs at least two classes, got {args.classes}: a "
                             "classifier of one class always says 1")
        if len(set(args.classes)) != len(args.classes):
            raise ValueError(f"--classes names a class twice: {args.classes}")
        unknown = [c for c in args.classes if not 0 <= c < classes]
        if unknown:
            raise ValueError(f"--classes {' '.join(map(str, unknown))}: the classes of {args.dataset} "
                             f"are 0 to {classes - 1}")
        classes = len(args.classes)
    if args.limit is not None and args.limit < classes:
        raise ValueError(f"--limit {args.limit} is fewer images than the {classes} classes to "
                         f"learn: give at least {classes}, one image of each")
    return {"model": args.model, "model_options": model_options, "dataset": args.dataset,
            "seed": args.seed, "classes": args.classes, "limit": args.limit,
            "early_stopping": args.early_stopping, "recipe": dataclasses.asdict(recipe)}


def read_config(path, keys=CONFIG_KEYS,
                advice="put back a good copy, or start the run afresh in another --out"):
    """The settings in the config.json at ``path``, which must be one that ``nnscratch train``
    wrote, holding at least ``keys``; a ValueError naming the file and ending with ``advice``
    otherwise."""
    try:
        saved = json.loads(path.read_bytes())
    except ValueError as error:                 # not JSON, or not text
        raise ValueError(f"{path} is not valid JSON ({error}): {advice}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} holds a {type(saved).__name__}, not a run's settings: "
                         f"{advice}")
    if "recipe" in keys and "recipe" not in saved:
        raise ValueError(f"{path} was written by an earlier nnscratch, which did not keep the "
                         "recipe apart, or by something else: start the run afresh in another "
                         "folder")
    missing = [key for key in keys if key not in saved]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: it is not a config.json of "
                         f"`nnscratch train`: {advice}")
    classes = saved.get("classes")
    if classes is not None and not (isinstance(classes, list) and classes and all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes)):
        raise ValueError(f"{path} holds classes {classes!r}, not a list of class numbers: "
                         f"{advice}")
    if "recipe" in keys:
        try:
            zoo.Recipe(**saved["recipe"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path} holds no valid recipe ({error}): {advice}") from None
    return saved


def unstarted(out):
    """True when the folder ``out`` holds no run, or one that never finished an epoch: nothing
    but a config.json of ``nnscratch train`` (besides a lock and a killed write's temporaries).
    Such a folder may take a new run, with any settings: nothing in it is lost."""
    names = [entry.name for entry in out.iterdir()
             if entry.name != files.LOCK and not files.is_unfinished(entry)]
    if names != [CONFIG] or not (out / CONFIG).is_file():
        return not names
    try:
        read_config(out / CONFIG)
    except ValueError:
        return False
    return True


def check_out(out, resume):
    """Refuse an ``--out`` the run may not use, before anything is written: a file, a link to
    nothing, a folder that cannot be written, and a folder that holds anything but a run that
    never finished an epoch (or, with ``resume``, a run)."""
    if out.is_symlink() and not out.exists():
        raise ValueError(f"--out {out} is a link to nothing: choose another --out")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: choose another --out")
    files.refuse_unwritable(out)
    if not out.exists() or unstarted(out):
        return
    if not resume:
        raise ValueError(f"{out} exists and is not empty: pass --resume to continue the run in "
                         "it, or choose another --out")
    if not (out / CONFIG).is_file():
        raise ValueError(f"--resume: {out} holds no {CONFIG}, so no run of nnscratch to "
                         "continue: choose another --out")


def saved_config(out, resume):
    """The settings of the run in ``out`` that ``resume`` continues, or None."""
    return read_config(out / CONFIG) if resume and (out / CONFIG).exists() else None


def settings_that_differ(saved, config):
    """"lr 0.005 there, 0.01 now" for each setting but the epochs where ``config`` differs
    from the ``saved`` one; the recipe's fields go by their own names."""
    there, now = {**saved, **saved["recipe"]}, {**config, **config["recipe"]}
    return [f"{key} {there.get(key)} there, {value} now" for key, value in now.items()
            if key not in ("recipe", "epochs") and there.get(key) != value]


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
    num_classes = len(args.classes) if args.classes else catalog.CLASSES[args.dataset]
    try:
        model = zoo.build(args.model, seed=args.seed, input_shape=shape,
                          num_classes=num_classes, **config["model_options"])
    except ValueError as error:
        raise ValueError(f"cannot build {args.model} for the {'x'.join(map(str, shape))} "
                         f"images of {args.dataset}: {error}") from None
    if args.gpu:
        model.to("gpu")
    return saved, config, recipe, (train_data, validation), model


def train(args):
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
