"""The ``nnscratch`` command, laid out as pip lays out its own: one module of this package per
command, each owning its options and its work, and this top level, which knows only the
commands' names and one-line summaries (pip's ``commands_dict``) and dispatches::

    nnscratch/commands/NAME.py    add_arguments(parser)    the command's options
                                  run(args) -> exit status or None
                                  interrupted(args, argv)  optional: what to say after Ctrl-C

Only the standard library loads up front, and only the command being run is imported (first to
build its options, then to run it), so ``nnscratch --help`` and ``nnscratch info`` start fast
and a command may import what it needs, NumPy or the model zoo, at its top. Exit statuses: 0;
2 for every error, one line ``nnscratch: error: ...``; 1 when a quick study's checks fail; 130
when interrupted.
"""

import argparse
import importlib
import sys

import nnscratch

# Each command, the module nnscratch.commands.NAME, and what it does, for `nnscratch --help`.
COMMANDS = {
    "info": "versions, BLAS threads, CuPy and GPU availability",
    "data": "fetch datasets into the cache, list it",
    "train": "train a zoo model on a dataset",
    "demo": "train a small CNN on data that is always there, report the results",
    "evaluate": "metrics of a trained run",
    "attack": "attack a trained run's test split, report it",
    "gan": "train the report's GAN on MNIST (or CIFAR-10), with samples and curves",
    "reproduce": "reproduce a paper's study: tables beside the paper's, figures; stages "
                 "cached, resumable",
}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors read as all the command's errors do: the usage, then
    ``nnscratch: error: ...``, exit status 2. (The commands' parsers are of this class too.)"""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"nnscratch: error: {message}\n")


def command(name):
    """The module of the command ``name``."""
    return importlib.import_module(f"nnscratch.commands.{name}")


def build_parser(names=tuple(COMMANDS)):
    """The parser of ``nnscratch``: every command by its name and summary, and the options of
    the commands in ``names`` (all by default; ``main`` asks only for the one it runs, so that
    no other command's module is imported)."""
    parser = Parser(prog="nnscratch", description=nnscratch.__doc__)
    parser.add_argument("--version", action="version",
                        version=f"nnscratch {nnscratch.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       help="`nnscratch COMMAND --help` tells more")
    for name, summary in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=summary, description=summary)
        if name in names:
            command(name).add_arguments(subparser)
    return parser


def named_command(argv):
    """The command ``argv`` names: its first word that is not an option (the top level's own
    options, --help and --version, take no value), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv=None):
    """Run the command ``argv`` (default: sys.argv[1:]); returns the exit status: 0, 2 for every
    error (a line ``nnscratch: error: ...``), 1 for failed checks, 130 when interrupted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    name = named_command(argv)
    parser = build_parser([name] if name in COMMANDS else [])
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:          # --help, --version, or a parser error (printed)
        return stop.code
    if args.command is None:
        parser.print_help(sys.stderr)
        print("nnscratch: error: give a command", file=sys.stderr)
        return 2
    module = command(args.command)
    try:
        return module.run(args) or 0
    except KeyboardInterrupt:
        message = "interrupted"
        if hasattr(module, "interrupted"):      # train and reproduce say how to go on
            message = module.interrupted(args, argv)
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
