"""Throughput of nnscratch's attacks against torchattacks, on the same nets, weights and threads.

Four attacks on ``lenet`` and ``dnr_cnn`` (float32, 2 threads by default)::

    FGSM    eps 0.3                                                    batch 128
    PGD-40  eps 0.3, step 0.01, 40 steps, no random start              batch 128
    JSMA    theta 1, gamma 0.1, targeted at (y + 1) mod 10             batch 16
    C&W L2  20 steps x 1 binary-search step, lr 0.01, c 1, kappa 0     batch 128

nnscratch (``nnscratch.attacks``) runs on the zoo network; torchattacks 3.5.1 on its PyTorch
twin (``engine.torch_twin``: same layers, weights copied, checked by ``engine.check_twins``
before timing). The weights are random (seed 0) and the inputs random images in [0, 1] of
MNIST shape, labelled with the net's predictions: the work per call does not depend on
training for FGSM and PGD. nnscratch's C&W runs all its steps (``abort_early=False``);
torchattacks' CW stops when its summed loss rises (checked every 2 steps here), often after a
few steps on these random nets, so its steps are counted (forward passes of the twin) and the
C&W ratio compares the time per step (the whole-call ratio is kept as ``ratio_whole_call``).
JSMA's work depends on when each image reaches its target, so its figure is for this net and
these images.

Method: the steady state of ``engine.py``. Each framework is timed in a process of its own (the
nnscratch process never imports torch), ``--warmup`` untimed calls then ``--repeats``
consecutive timed calls; the processes alternate over ``--rounds`` rounds. Reported: the
median over all rounds with its interquartile range, images/s at the median, and the ratio of
medians nnscratch / torchattacks against the targets of issue 10 (``TARGETS``).

Usage (from the repository root)::

    python benchmarks/attacks.py             # 3 rounds, 15 FGSM / 5 other repeats
    python benchmarks/attacks.py --quick     # a smoke run: 1 round, 2 repeats

Results go to ``benchmarks/results/attacks.json`` (``--out``).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ATTACKS = ("FGSM", "PGD-40", "JSMA", "C&W L2")
BATCH = {"FGSM": 128, "PGD-40": 128, "JSMA": 16, "C&W L2": 128}
REPEATS = {"FGSM": 15, "PGD-40": 5, "JSMA": 5, "C&W L2": 5}
# Ratio of medians nnscratch / torchattacks that each row should stay under (issue 10).
TARGETS = {("lenet", "FGSM"): 1.0, ("lenet", "PGD-40"): 1.0,
           ("dnr_cnn", "FGSM"): 1.3, ("dnr_cnn", "PGD-40"): 1.3}
TARGETS.update({(m, a): 1.5 for m in ("lenet", "dnr_cnn") for a in ("JSMA", "C&W L2")})
CW_STEPS, CW_LR, CW_C = 20, 0.01, 1.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet", "dnr_cnn"])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=ATTACKS)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for NumPy's BLAS and PyTorch (default: 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of one process per framework (default: 3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed calls per process (default: 15 for FGSM, 5 for the others)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed calls first (default: 2 for FGSM, 1 for the others)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 2 timed calls, 1 warm-up call")
    parser.add_argument("--worker", choices=["nnscratch", "torchattacks"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path,
                        default=REPO / "benchmarks" / "results" / "attacks.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats, args.warmup = 1, 2, 1
    return args


if __name__ == "__main__":
    # before NumPy is imported (by engine): OpenBLAS reads these once
    _threads = parse_args(sys.argv[1:]).threads
    for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_name] = str(_threads)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))

import time  # noqa: E402

import numpy as np  # noqa: E402

import engine  # noqa: E402  (numpy and nnscratch only; torch is loaded by engine.load_torch)
from nnscratch import zoo  # noqa: E402


def inputs(model, batch, seed=0):
    """Random images in [0, 1] (batch, *input_shape), labels y = the model's predictions (so
    every image is attacked, none starts misclassified) and targets (y + 1) % 10."""
    gen = np.random.default_rng(seed)
    x = gen.random((batch,) + model.input_shape, dtype=np.float32)
    y = model.predict(x)
    return x, y, (y + 1) % 10


def nnscratch_call(model, attack_name, x, y, target):
    from nnscratch import attacks
    if attack_name == "FGSM":
        attack = attacks.FGSM(eps=0.3)
    elif attack_name == "PGD-40":
        attack = attacks.PGD(eps=0.3, step=0.01, steps=40, random_start=False)
    elif attack_name == "JSMA":
        attack = attacks.JSMA(theta=1.0, gamma=0.1, targeted=True)
        return lambda: attack.generate(model, x, y, target)
    else:
        attack = attacks.CarliniWagnerL2(steps=CW_STEPS, binary_search_steps=1, lr=CW_LR,
                                         initial_const=CW_C, abort_early=False)
    return lambda: attack.generate(model, x, y)


def torchattacks_call(model, attack_name, x, y):
    """(the call, a list whose one entry counts the twin's forward passes: each step of
    torchattacks' C&W is one forward and one backward, so the count gives the steps it took)."""
    import torchattacks
    torch = engine.torch
    net = engine.torch_twin(model).eval()
    engine.check_twins(model, net, x, y, "cpu")
    net.eval()
    forwards = [0]
    net.register_forward_hook(lambda *_: forwards.__setitem__(0, forwards[0] + 1))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    if attack_name == "FGSM":
        attack = torchattacks.FGSM(net, eps=0.3)
    elif attack_name == "PGD-40":
        attack = torchattacks.PGD(net, eps=0.3, alpha=0.01, steps=40, random_start=False)
    elif attack_name == "JSMA":
        attack = torchattacks.JSMA(net, theta=1.0, gamma=0.1)   # targets (y + 1) % 10
    else:
        attack = torchattacks.CW(net, c=CW_C, kappa=0, steps=CW_STEPS, lr=CW_LR)
    return (lambda: attack(tx, ty)), forwards


def worker(args):
    """Time every (model, attack) in this process; prints {model: {attack: [seconds]}}."""
    if args.worker == "torchattacks":
        engine.load_torch(args.threads)
    times, steps = {}, {}
    for name in args.models:
        model = zoo.build(name, seed=0)
        for attack_name in args.attacks:
            x, y, target = inputs(model, BATCH[attack_name])
            forwards = [0]
            if args.worker == "nnscratch":
                fn = nnscratch_call(model, attack_name, x, y, target)
            else:
                fn, forwards = torchattacks_call(model, attack_name, x, y)
            warmup = args.warmup if args.warmup is not None else (2 if attack_name == "FGSM" else 1)
            repeats = args.repeats or REPEATS[attack_name]
            for _ in range(warmup):
                fn()
            measured, forwards[0] = [], 0
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                measured.append(time.perf_counter() - start)
            times.setdefault(name, {})[attack_name] = measured
            steps.setdefault(name, {})[attack_name] = forwards[0] / repeats
    print(json.dumps({"times": times, "forwards": steps}))


def run_worker(args, framework):
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
               "--threads", str(args.threads), "--models", *args.models,
               "--attacks", *args.attacks]
    if args.repeats is not None:
        command += ["--repeats", str(args.repeats)]
    if args.warmup is not None:
        command += ["--warmup", str(args.warmup)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the {framework} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    times, cw_steps = {"nnscratch": [], "torchattacks": []}, []
    for r in range(args.rounds):
        for framework in times:
            print(f"round {r + 1}/{args.rounds}: {framework} ...", flush=True)
            measured = run_worker(args, framework)
            times[framework].append(measured["times"])
            if framework == "torchattacks":
                cw_steps.append(measured["forwards"])
    rows = []
    for name in args.models:
        for attack_name in args.attacks:
            stats = {f: engine.summarize([t for run in runs for t in run[name][attack_name]])
                     for f, runs in times.items()}
            ratio = stats["nnscratch"]["median_s"] / stats["torchattacks"]["median_s"]
            row = {"model": name, "attack": attack_name, "batch": BATCH[attack_name],
                   "nnscratch": stats["nnscratch"], "torchattacks": stats["torchattacks"],
                   "round_medians_s": {f: [float(np.median(run[name][attack_name]))
                                           for run in runs] for f, runs in times.items()},
                   "ratio": ratio}
            if attack_name == "C&W L2":
                # torchattacks may stop early: compare the time per optimisation step
                taken = float(np.mean([run[name][attack_name] for run in cw_steps]))
                row.update(ratio_whole_call=ratio, steps={"nnscratch": CW_STEPS,
                                                          "torchattacks": taken},
                           ratio=ratio * taken / CW_STEPS)
            target = TARGETS.get((name, attack_name))
            row.update(target=target, met=None if target is None else row["ratio"] <= target)
            rows.append(row)
    print_table(rows)
    engine.load_torch(args.threads)   # for the versions in the environment only, after timing
    env = engine.environment(argparse.Namespace(threads=args.threads, batch=BATCH,
                                                inference_images=None, models=args.models,
                                                repeats=args.repeats or REPEATS,
                                                rounds=args.rounds, warmup=args.warmup), "cpu")
    import torchattacks
    env["torchattacks"] = torchattacks.__version__
    env["quick"] = args.quick
    env["budgets"] = {"FGSM": "eps 0.3", "PGD-40": "eps 0.3, step 0.01, 40 steps, no random start",
                      "JSMA": "theta 1, gamma 0.1, target (y + 1) % 10",
                      "C&W L2": f"{CW_STEPS} steps x 1 search step, lr {CW_LR}, c {CW_C}"}
    env["weights"] = "random (zoo seed 0); inputs random in [0, 1]"
    engine.write_json(args.out, {"environment": env, "rows": rows})   # prints where


def print_table(rows):
    print("| model   | attack | batch | nnscratch median [IQR] | torchattacks median [IQR] "
          "| nnscratch img/s | torchattacks img/s | ratio | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ours, theirs = row["nnscratch"], row["torchattacks"]
        verdict = f"<= {row['target']:.1f}x {'met' if row['met'] else 'NOT MET'}"
        if "steps" in row:
            verdict += (f" (per step; torchattacks took {row['steps']['torchattacks']:.1f} of "
                        f"{CW_STEPS} steps, whole call {row['ratio_whole_call']:.2f}x)")
        print(f"| {row['model']} | {row['attack']} | {row['batch']} | {engine.format_time(ours)} "
              f"| {engine.format_time(theirs)} | {row['batch'] / ours['median_s']:.0f} "
              f"| {row['batch'] / theirs['median_s']:.0f} | {row['ratio']:.2f}x | {verdict} |")


if __name__ == "__main__":
    main()
