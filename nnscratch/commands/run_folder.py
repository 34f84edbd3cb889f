"""What a run folder of ``nnscratch train`` holds, read and checked: the settings in its
config.json, whether it holds a run yet, and its trained model. ``train`` keeps its settings
there, ``evaluate`` and ``attack`` load what it trained (``load_run``).

A run folder::

    config.json       the run's settings: the network and its options, the data, the seed,
                      early stopping and the recipe (CONFIG_KEYS); written before training
    checkpoint.npz    after every epoch (``training.fit``), to resume from
    model.npz         the trained weights (``nnscratch.io``), history.json, training_curves.png
"""

import json
from pathlib import Path

from nnscratch import data, files, io, zoo
from nnscratch.training import CHECKPOINT

CONFIG = "config.json"
CONFIG_KEYS = ("model", "model_options", "dataset", "seed", "classes", "limit",
               "early_stopping", "recipe")


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


def load_run(run, dataset=None):
    """The trained model of the run folder ``run`` and what it was trained on: (model, config,
    dataset), config's "model", "dataset" and "classes" as config.json has them (a model.npz
    saved alone has none: ``dataset`` must then be given). ValueErrors say what to do."""
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"{run} {'is a file' if run.exists() else 'does not exist'}: give "
                         "the --out folder of `nnscratch train`")
    if not (run / "model.npz").exists():
        raise ValueError(f"{run}/model.npz not found: train first "
                         f"(nnscratch train ... --out {run})")
    config = {"model": run.name, "dataset": None, "classes": None}   # a model.npz saved alone
    if (run / CONFIG).exists():
        config = read_config(run / CONFIG, ("model", "dataset", "classes"),
                                  "put back a good copy, or move it away and give --dataset")
    dataset = dataset or config["dataset"]
    if dataset is None:
        raise ValueError(f"{run} has no config.json saying what it was trained on: "
                         "give --dataset")
    if dataset not in data.DATASETS:
        raise ValueError(f"{run}/{CONFIG} names dataset {dataset!r}, which nnscratch does "
                         f"not know ({', '.join(data.DATASETS)}): give --dataset")
    try:
        model = io.load(run / "model.npz")
    except ValueError as error:
        rewrite = (f" (`nnscratch train ... --out {run} --resume` writes it again from "
                   f"{CHECKPOINT})" if (run / CHECKPOINT).exists() else "")
        raise ValueError(f"{error}: put back a good copy, or train again{rewrite}") from None
    return model, config, dataset
