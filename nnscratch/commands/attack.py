"""``nnscratch attack RUN_DIR --attack NAME``: attack a trained run's test split, report it.

It loads the run as ``nnscratch evaluate`` does (``run_folder.load_run``), builds the
attack from the command's options (``build_attack``: each attack takes the options that mean
something to it, and any other option given is refused), attacks the test split in batches of
``BATCH`` images under a progress bar (``evaluation.evaluate_attack``, the loop every
evaluation shares), and writes a report folder, ``RUN_DIR/attack_NAME/`` by default::

    report.json     the settings, and clean accuracy, accuracy under attack, success rate,
                    mean L0/L2/Linf and PASS over the successful images, mean queries, and
                    the attack's seconds (PASS not included)
    report.md       the same as a short table
    examples.png    originals above their adversarials, with the predicted classes

The folder is written whole or not at all (``files.atomic_dir``), and an existing one is
replaced only if it holds nothing but these files, as the demo's
(``files.refuse_unless_replaceable``).
"""

import json
from pathlib import Path

import numpy as np

from nnscratch import attacks, backend, data, files, metrics, plots
from nnscratch.commands.options import CLASS, COUNT, EPS, PATH, SEED, STEP, STEPS
from nnscratch.commands.run_folder import load_run
from nnscratch.evaluation import evaluate_attack

REPORT_FILES = ("report.json", "report.md", "examples.png")
BATCH = 100              # images per call to generate: one step of the progress bar
PASS_IMAGES = 200        # PASS (an ECC alignment per image) on at most the first 200 successes

# The options of the command that each attack takes (--target and --seed where it has them);
# an option given to an attack not listed here is refused. jsma and lbfgs are targeted
# attacks, as their papers define them: they need --target. fab without --eps is the
# minimal-norm attack; autoattack is untargeted, its --steps those of its APGD and FAB runs.
OPTIONS = {"fgsm": ("eps", "target"), "fgv": ("eps", "norm", "target"),
           "bim": ("eps", "step", "steps", "target"),
           "pgd": ("eps", "step", "steps", "norm", "seed", "target"),
           "apgd": ("eps", "steps", "norm", "seed", "target"),
           "fab": ("eps", "steps", "norm", "seed", "target"),
           "square": ("eps", "queries", "norm", "seed", "target"),
           "autoattack": ("eps", "steps", "queries", "norm", "seed"),
           "jsma": ("target",), "cw": ("steps", "target"), "lbfgs": ("steps", "target"),
           "onepixel": ("steps", "seed", "target"), "localsearch": ("steps", "seed")}
NEEDS_TARGET = ("jsma", "lbfgs")
DEFAULT_EPS = 0.1


def add_arguments(parser):
    parser.add_argument("run", type=PATH, help="the --out folder of `nnscratch train`")
    parser.add_argument("--attack", required=True, metavar="NAME", choices=tuple(OPTIONS),
                        help=f"one of {', '.join(OPTIONS)}")
    parser.add_argument("--eps", type=EPS, help="the perturbation bound (default "
                        f"{DEFAULT_EPS}): fgsm, fgv, bim, pgd, apgd, square, autoattack; fab "
                        "(default: none, the smallest perturbation it finds)")
    parser.add_argument("--steps", type=STEPS, help="iterations: bim, pgd, apgd (default 100), "
                        "fab (default 10), autoattack (of its APGD and FAB runs, default 100), "
                        "cw, lbfgs, onepixel, localsearch (rounds)")
    parser.add_argument("--queries", type=STEPS, help="model calls per image and run: square "
                        "(default 1000), autoattack (of its Square run, default 5000)")
    parser.add_argument("--step", type=STEP, help="the step size: bim, pgd")
    parser.add_argument("--norm", choices=["linf", "l2"], help="fgv, pgd, apgd, fab, square, "
                        "autoattack (default linf)")
    parser.add_argument("--target", type=CLASS, help="attack towards this class (needed by "
                        "jsma and lbfgs; images of that class are left out)")
    parser.add_argument("--seed", type=SEED, help="pgd, apgd, fab, square, autoattack, "
                        "onepixel, localsearch (default 0)")
    parser.add_argument("--limit", type=COUNT, metavar="N",
                        help="the first N test images (default: all)")
    parser.add_argument("--out", type=PATH,
                        help="the report folder (default RUN/attack_NAME)")


def build_attack(name, eps=None, step=None, steps=None, norm=None, target=None, seed=None,
                 queries=None):
    """The attack ``name`` with the given options (None: not given, the attack's default);
    a ValueError for an option ``name`` does not take, or a targeted attack without target.
    The attacks' constructors check the values themselves (a negative eps, say)."""
    if name not in OPTIONS:
        raise ValueError(f"unknown attack {name!r}: choose one of {', '.join(OPTIONS)}")
    given = {key: value for key, value in dict(eps=eps, step=step, steps=steps, norm=norm,
                                               target=target, seed=seed,
                                               queries=queries).items()
             if value is not None}
    wrong = [key for key in given if key not in OPTIONS[name]]
    if wrong:
        taken = ", ".join(f"--{key}" for key in OPTIONS[name])
        raise ValueError(f"{name} does not take {', '.join(f'--{key}' for key in wrong)} "
                         f"(it takes {taken})")
    if name in NEEDS_TARGET and target is None:
        raise ValueError(f"{name} is a targeted attack: give --target CLASS")
    targeted, seed, norm = target is not None, 0 if seed is None else seed, norm or "linf"
    if name == "fab":
        return attacks.FAB(eps, norm, targeted=targeted, seed=seed, **_given(steps=steps))
    eps = DEFAULT_EPS if eps is None else eps
    if name == "fgsm":
        return attacks.FGSM(eps, targeted=targeted)
    if name == "fgv":
        return attacks.FGV(eps, norm, targeted=targeted)
    if name == "bim":
        return attacks.BIM(eps, **_given(step=step, steps=steps), targeted=targeted)
    if name == "pgd":
        return attacks.PGD(eps, norm=norm, seed=seed, targeted=targeted,
                           **_given(step=step, steps=steps))
    if name == "apgd":
        return attacks.APGD(eps, norm, targeted=targeted, seed=seed, **_given(steps=steps))
    if name == "square":
        return attacks.Square(eps, norm, targeted=targeted, seed=seed,
                              **_given(n_queries=queries))
    if name == "autoattack":
        return attacks.AutoAttack(eps, norm, seed=seed,
                                  **_given(steps=steps, n_queries=queries))
    if name == "jsma":
        return attacks.JSMA(targeted=True)
    if name == "cw":
        return attacks.CarliniWagnerL2(**_given(steps=steps), targeted=targeted)
    if name == "lbfgs":
        return attacks.LBFGS(targeted=True, **_given(max_iterations=steps))
    if name == "onepixel":
        return attacks.OnePixel(**_given(max_iterations=steps), seed=seed, targeted=targeted)
    return attacks.LocalSearch(**_given(rounds=steps), seed=seed)


def _given(**options):
    return {key: value for key, value in options.items() if value is not None}


def pass_report(x, outcome):
    """Mean PASS (Rozsa et al. 2016) over at most the first ``PASS_IMAGES`` successful images
    of ``outcome`` (an ``Evaluation`` of the images x), and their number: an ECC alignment per
    image (~13 ms) is too slow for all of them."""
    chosen = np.flatnonzero(outcome.success)[:PASS_IMAGES]
    if not chosen.size:
        return {"mean_pass": float("nan"), "pass_images": 0}
    scores = metrics.pass_score(backend.to_numpy(x)[chosen], outcome.x_adv[chosen])
    return {"mean_pass": float(np.mean(scores)), "pass_images": int(chosen.size)}


def run(args, progress=None):
    """``nnscratch attack``: ``args`` as the parser gives them."""
    attack = build_attack(args.attack, eps=args.eps, step=args.step, steps=args.steps,
                          norm=args.norm, target=args.target, seed=args.seed,
                          queries=args.queries)
    model, config, dataset = load_run(args.run)
    out = files.absolute(args.out or Path(args.run) / f"attack_{args.attack}")
    files.refuse_unless_replaceable(out, "the attack report", REPORT_FILES)
    files.refuse_unwritable(out.parent)
    x, y = data.load(dataset, "test", classes=config["classes"])
    if args.target is not None:
        classes = model.logits(x[:1]).shape[1]
        if args.target >= classes:
            raise ValueError(f"--target {args.target} is not a class of {config['model']} "
                             f"(0 to {classes - 1})")
        keep = np.flatnonzero(backend.to_numpy(y) != args.target)   # target must differ from y
        x, y = x[keep], y[keep]
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]                       # the first N, in order
    target = None if args.target is None else np.full(len(y), args.target, dtype=np.int64)
    print(f"attack: {args.attack} on {config['model']}, {dataset} test ({len(x)} images)")
    outcome = evaluate_attack(model, attack, x, y, target, batch=BATCH, progress=progress)
    report = outcome.report()
    report.update(pass_report(x, outcome), attack=args.attack, run=str(Path(args.run).absolute()),
                  model=config["model"], dataset=dataset, split="test",
                  settings=attack.settings(),
                  target=args.target, limit=args.limit)
    with files.atomic_dir(out, replace=True) as staging:     # replaceable: checked above
        files.atomic_write(staging / "report.json", json.dumps(report, indent=2))
        files.atomic_write(staging / "report.md", markdown(report))
        plots.adversarial_grid(x, outcome.x_adv, outcome.clean, outcome.adversarial,
                               staging / "examples.png")
        files.refuse_unless_replaceable(out, "the attack report", REPORT_FILES)   # again
    print(markdown(report))
    print(f"report written to {out}/")


def markdown(report):
    """The report as a short table."""
    rows = [f"# {report['attack']} on {report['model']} ({report['dataset']} "
            f"{report['split']}, {report['n']} images)", "", "| measure | value |", "|---|---|",
            f"| clean accuracy | {report['clean_accuracy']:.4f} |",
            f"| accuracy under attack | {report['accuracy_under_attack']:.4f} |",
            f"| success rate | {report['success_rate']:.4f} |",
            f"| mean L2 (successes) | {report['mean_l2']:.4f} |",
            f"| mean Linf (successes) | {report['mean_linf']:.4f} |",
            f"| mean L0 (successes) | {report['mean_l0']:.1f} |",
            f"| mean PASS ({report['pass_images']} successes) | {report['mean_pass']:.4f} |",
            f"| mean queries | {report['mean_queries']:.1f} |",
            f"| time | {report['seconds']:.1f} s |"]
    return "\n".join(rows) + "\n"
