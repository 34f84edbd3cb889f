"""``nnscratch reproduce STUDY`` and ``nnscratch reproduce --list``: run a study's
reproduction (``nnscratch/experiments/``), or say which there are.

The results go to ``./reproduce-STUDY`` (``reproduce-STUDY-quick`` with ``--quick``) unless
``--out`` says otherwise: never to ``results/STUDY``, so that a run does not overwrite the
committed results by accident. The stages' outputs are cached (``experiments/runner.py``), so
running the command again after an interruption, or with another setting, resumes rather
than starting over.
"""

import sys
from pathlib import Path

from nnscratch import experiments
from nnscratch.commands.options import PATH, SEED
from nnscratch.experiments import runner


def add_arguments(parser):
    parser.add_argument("study", nargs="?", metavar="STUDY", help="the study (see --list)")
    parser.add_argument("--list", action="store_true", help="the studies and their runs")
    parser.add_argument("--quick", action="store_true", help="a small subset, the study's "
                        "checks asserted (exit 1 if one fails)")
    parser.add_argument("--out", type=PATH, help="default ./reproduce-STUDY[-quick], never "
                        "results/ (committed), replaced only if it holds an earlier run's "
                        "results; stages are cached in $NNSCRATCH_DATA (~/.cache/nnscratch)")
    parser.add_argument("--seed", type=SEED, default=0, help="default 0")


def listing():
    """Each study, what it reproduces and its full run's measured time; a study whose module
    cannot be imported is listed as such (the others still are)."""
    lines = []
    for name in experiments.STUDIES:
        try:
            study = experiments.load(name)
            title, full_run = study.TITLE, study.FULL_RUN
        except Exception as error:      # a module being written, a missing dependency
            lines.append(f"{name}: cannot be imported ({type(error).__name__}: {error})")
            continue
        lines += [f"{name}: {title}", f"    full run: {full_run}"]
    return "\n".join(lines)


def default_out(name, quick):
    return Path(f"reproduce-{name}" + ("-quick" if quick else ""))


def run(args):
    """The command; returns its exit status: 0, or 1 when a quick run's checks failed (bad
    input raises ValueError or OSError, which the command line reports with status 2)."""
    if args.list:
        if args.study is not None:
            raise ValueError("give a STUDY or --list, not both")
        print(listing())
        return 0
    if args.study is None:
        raise ValueError("give the STUDY to reproduce (nnscratch reproduce --list names them)")
    try:
        study = experiments.load(args.study)
    except ImportError as error:
        raise ValueError(f"study {args.study} cannot be imported ({error})") from error
    out = Path(args.out) if args.out is not None else default_out(args.study, args.quick)
    try:
        runner.run_study(study, out, quick=args.quick, seed=args.seed)
    except runner.ChecksFailed as failure:
        print(f"nnscratch: error: {failure}", file=sys.stderr)
        return 1
    print((out / "tables.md").read_text(encoding="utf-8"))
    print(f"results written to {out}/ (results.json, tables.md, figures/)")
    return 0


def interrupted(args, argv):
    """What to tell the user who interrupted a study: the cached stages are kept."""
    return "interrupted; the same command resumes with the stages it finished"
