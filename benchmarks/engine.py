"""Speed of the nnscratch engine against PyTorch, on the same nets, weights, data and threads.

Three measurements per network (``lenet`` and ``dnr_cnn`` by default), float32::

    training step      model.compute_gradients(x, y, rng) + SGD(lr 0.01, momentum 0.9).step()
                       vs zero_grad, forward (train mode), cross_entropy, backward, SGD step
    inference          model.logits(x) on 1,000 images (nnscratch batches by model.batch_size)
                       vs PyTorch in eval mode under torch.inference_mode() fed the same
                       batches (the target's reference), and in one call (reported beside it)
    input gradient     model.loss_gradient(x, y): d(sum of per-sample losses)/dx, eval mode
                       vs cross_entropy(reduction="sum").backward() with the weights frozen

Training and input-gradient steps use a batch of 128 (``--batch``). Before any timing, the
PyTorch twin of each network (same layers, weights copied over) must give the same logits and
the same input gradients, and, with dropout switched off, the same parameter gradients: a
benchmark of two different computations would be worthless.

Steady state (the default, and what every figure we publish comes from): each framework is
timed in a process of its own, ``--warmup`` untimed calls then ``--repeats`` consecutive timed
calls, the way a training loop or an attack runs. The two frameworks' processes alternate over
``--rounds`` rounds (nnscratch, PyTorch, nnscratch, PyTorch, ...), so a slow phase of the
machine falls on both. Alternating single calls in one process (``--interleaved``, kept as a
labelled secondary) flatters nnscratch: between two PyTorch calls NumPy's BLAS runs, PyTorch's
thread pool goes to sleep, and every PyTorch call pays to wake it.

Every row reports the median over all rounds, its interquartile range and the spread of the
per-round medians, the ratio of the medians (nnscratch / PyTorch) against the targets in
``TARGETS``, and the work's rate in GFLOP/s beside the machine's measured float32 matrix-product
peak (a 1024 x 1024 product in NumPy, same threads). The work counts only the products of the
convolutions and dense layers: forward 2 N H' W' O kh kw C (conv) and 2 N F_in F_out (dense);
a training step adds the weight gradients and the input gradients of every layer but the
first; an input-gradient step adds the input gradients of every layer.

Usage (from the repository root)::

    python benchmarks/engine.py                       # CPU, 2 threads, lenet and dnr_cnn
    python benchmarks/engine.py --quick               # a smoke run: fewer repetitions
    python benchmarks/engine.py --interleaved         # also the alternating single calls
    python benchmarks/engine.py --profile             # where nnscratch's training step spends time
    python benchmarks/engine.py --gpu                 # nnscratch on CuPy vs PyTorch CUDA eager

``--profile`` times every layer's forward and backward inside the training step, then prints
cProfile's top functions; it runs on the CPU only.

Results go to ``benchmarks/results/engine.json`` (``--out``) with the machine's description.
"""

import argparse
import copy
import cProfile
import datetime
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Ratio of steady-state medians nnscratch / PyTorch that each measurement should stay under,
# per device (inference: against PyTorch fed the same batches). A missing entry means
# "reported, no target".
TARGETS = {
    "cpu": {(model, measurement): 1.0 for model in ("lenet", "dnr_cnn")
            for measurement in ("training step", "inference", "input gradient")},
    "gpu": {("lenet", "training step"): 1.5, ("dnr_cnn", "training step"): 1.5},
}
MEASUREMENTS = ("training step", "inference", "input gradient")

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["lenet", "dnr_cnn"],
                        help="networks of nnscratch.zoo to measure (default: lenet dnr_cnn)")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads for both NumPy's BLAS and PyTorch (default: 2)")
    parser.add_argument("--repeats", type=int, default=30,
                        help="consecutive timed calls per framework, measurement and round "
                             "(default: 30)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="untimed calls first, in every process (default: 5)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of one process per framework (default: 3)")
    parser.add_argument("--batch", type=int, default=128,
                        help="batch of the training and input-gradient steps (default: 128)")
    parser.add_argument("--inference-images", type=int, default=1000,
                        help="images per inference call (default: 1000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 5 repetitions, 1 warm-up call, 1 round")
    parser.add_argument("--interleaved", action="store_true",
                        help="also time the frameworks in alternating single calls in one "
                             "process (a secondary figure that flatters nnscratch)")
    parser.add_argument("--worker", choices=["nnscratch", "pytorch", "sgemm"],
                        help=argparse.SUPPRESS)      # one timed block, in a child process
    parser.add_argument("--measurement", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    parser.add_argument("--gpu", action="store_true",
                        help="nnscratch on CuPy against PyTorch CUDA (needs both and a GPU)")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the comparison, profile nnscratch's training step of "
                             "every model in --models: time per layer, then cProfile")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "engine.json",
                        help="JSON file for the results (default: benchmarks/results/engine.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.rounds = 5, 1, 1
    if min(args.repeats, args.threads, args.rounds) < 1:
        parser.error("--repeats, --threads and --rounds must be >= 1")
    return args


def set_thread_variables(argv):
    """Export the thread count of ``--threads`` for every BLAS and OpenMP runtime.

    OpenBLAS reads these variables once, when NumPy is imported, so this runs before the
    imports below; ``threadpoolctl`` (when installed) enforces the same limit again later.
    """
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--threads", type=int, default=2)
    threads = early.parse_known_args(argv)[0].threads
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


if __name__ == "__main__":
    set_thread_variables(sys.argv[1:])
    sys.path.insert(0, str(REPO))  # run from a checkout, no installation needed

import numpy as np  # noqa: E402  (after the thread variables, on purpose)

import nnscratch  # noqa: E402
from nnscratch import backend, files, layers, zoo  # noqa: E402
from nnscratch.losses import softmax_cross_entropy  # noqa: E402
from nnscratch.optim import SGD  # noqa: E402

try:
    import threadpoolctl
except ImportError:  # optional: the environment variables above then do the work alone
    threadpoolctl = None

torch = F = None    # loaded by load_torch(): a process timing nnscratch never loads PyTorch


def load_torch(threads):
    global torch, F
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- the twin nets

def torch_twin(model):
    """A ``torch.nn.Sequential`` computing exactly what the nnscratch ``model`` computes.

    Layer by layer, with the weights copied: Conv2D W (O, C, kh, kw) is already the layout of
    ``nn.Conv2d.weight``; Dense W (in, out) is the transpose of ``nn.Linear.weight``.
    """
    modules = []
    for layer in model.layers:
        p = {k: torch.from_numpy(backend.to_numpy(v).copy()) for k, v in layer.params.items()}
        if isinstance(layer, layers.Conv2D):
            (top, bottom), (left, right) = layer.pads
            if top != bottom or left != right:
                raise NotImplementedError(f"{layer.describe()}: asymmetric padding")
            module = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                     stride=layer.stride, padding=(top, left))
            module.weight.data.copy_(p["W"])
            module.bias.data.copy_(p["b"])
        elif isinstance(layer, layers.Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features)
            module.weight.data.copy_(p["W"].T)
            module.bias.data.copy_(p["b"])
        elif isinstance(layer, layers.MaxPool2D):
            module = torch.nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, layers.ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, layers.Dropout):
            module = torch.nn.Dropout(layer.p)
        elif isinstance(layer, layers.Flatten):
            module = torch.nn.Flatten()
        else:
            raise NotImplementedError(f"no PyTorch twin for {layer.describe()}")
        modules.append(module)
    return torch.nn.Sequential(*modules)


def relative_error(a, b):
    """max|a - b| / max(1e-8, max|b|): the error relative to the size of the reference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(1e-8, np.abs(b).max()))


def check_twins(model, net, x, y, device):
    """Assert that nnscratch and PyTorch compute the same thing; returns the errors found.

    Logits (eval mode) must agree to 1e-4 absolute; input gradients, and the parameter
    gradients of one training pass, to 1e-3 relative to their size (float32 sums in a
    different order). One exception: when two inputs of a max-pooling window are closer than
    that rounding, the frameworks may route the window's gradient to different inputs, so up to
    1% of the samples may have a different input gradient (they are counted). For the training
    pass the dropout of both nets is switched off, since the two frameworks draw different masks.
    """
    tx, ty = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    gx, gy = backend.to_device(x, device_name(device)), backend.to_device(y, device_name(device))

    net.eval()
    with torch.no_grad():
        torch_logits = net(tx).cpu().numpy()
    ours = backend.to_numpy(model.logits(gx))
    logits_diff = float(np.abs(ours - torch_logits).max())
    assert logits_diff < 1e-4, f"logits differ by {logits_diff:.3g} (max abs)"

    _, grad_x = model.loss_gradient(gx, gy)
    tx_leaf = tx.clone().requires_grad_()
    F.cross_entropy(net(tx_leaf), ty, reduction="sum").backward()
    ours, theirs = backend.to_numpy(grad_x), tx_leaf.grad.cpu().numpy()
    scale = max(1e-8, float(np.abs(theirs).max()))
    sample_errors = np.abs(ours - theirs).reshape(len(x), -1).max(axis=1) / scale
    differing = int((sample_errors >= 1e-3).sum())
    input_error = float(sample_errors[sample_errors < 1e-3].max(initial=0.0))
    assert differing <= 0.01 * len(x), (f"input gradients differ for {differing} of {len(x)} "
                                        f"samples (worst relative error {sample_errors.max():.3g})")

    drop_ours = [l for l in model.layers if isinstance(l, layers.Dropout)]
    drop_torch = [m for m in net if isinstance(m, torch.nn.Dropout)]
    saved = [l.p for l in drop_ours]
    for module in drop_ours + drop_torch:
        module.p = 0.0
    try:
        model.compute_gradients(gx, gy, backend.new_rng(0, backend.get_array_module(gx)))
        net.train()
        net.zero_grad()
        F.cross_entropy(net(tx), ty).backward()
    finally:
        for module, p in zip(drop_ours, saved):
            module.p = p
        for module, p in zip(drop_torch, saved):
            module.p = p
    param_error, worst = 0.0, None
    for (name, _, grad), parameter in zip(model.parameters(), net.parameters()):
        # only Dense W is 2-D (conv W is 4-D, biases 1-D), and it is Linear.weight transposed
        expected = parameter.grad.T if grad.ndim == 2 else parameter.grad
        error = relative_error(backend.to_numpy(grad), expected.cpu().numpy())
        if error >= param_error:
            param_error, worst = error, name
    net.zero_grad()
    assert param_error < 1e-3, (f"parameter gradients differ (relative error {param_error:.3g} "
                                f"in {worst})")
    return {"logits_max_abs_diff": logits_diff, "input_gradient_rel_error": input_error,
            "input_gradient_samples_differing": differing,  # excluded from the error above
            "param_gradient_rel_error": param_error}


def device_name(torch_device):
    return "cpu" if torch_device == "cpu" else "gpu"


# ----------------------------------------------------------------------------- timing

def summarize(times):
    """Median, quartiles and extremes of a list of durations in seconds."""
    q1, median, q3 = (statistics.quantiles(times, n=4, method="inclusive")
                      if len(times) > 1 else times * 3)
    return {"median_s": median, "q1_s": q1, "q3_s": q3, "min_s": min(times), "max_s": max(times),
            "times_s": times}


def time_in_turns(contenders, repeats, warmup, sync):
    """Time every function of ``contenders`` ({label: fn}) in turns, ``repeats`` rounds.

    Each round calls every contender once, in order, so slow phases of a noisy machine fall on
    all of them. ``sync()`` runs before the clock is read on either side of a call (it waits
    for a GPU to finish; a no-op on the CPU). Returns {label: summarize(times)}.
    """
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    sync()
    times = {label: [] for label in contenders}
    for _ in range(repeats):
        for label, fn in contenders.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[label].append(time.perf_counter() - start)
    return {label: summarize(t) for label, t in times.items()}


def nnscratch_functions(model, x, y, x_many, device, rng):
    """{measurement: {"nnscratch": fn}}: the work nnscratch is timed on (inputs built here,
    outside the timed functions)."""
    dev = device_name(device)
    gx, gy, g_many = (backend.to_device(a, dev) for a in (x, y, x_many))
    optimizer = SGD(model, lr=0.01, momentum=0.9)

    def train():
        model.compute_gradients(gx, gy, rng)
        optimizer.step()

    return {"training step": {"nnscratch": train},
            "inference": {"nnscratch": lambda: model.logits(g_many)},
            "input gradient": {"nnscratch": lambda: model.loss_gradient(gx, gy)}}


def pytorch_functions(model, net, x, y, x_many, device):
    """{measurement: {label: fn}}: the same work in PyTorch. Inference: "pytorch" is fed the
    batches nnscratch uses (``model.batch_size``: the target's reference), "pytorch_one_call"
    all images at once."""
    tx, ty, t_many = (torch.from_numpy(a).to(device) for a in (x, y, x_many))
    torch_optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)

    def train():
        net.train()
        torch_optimizer.zero_grad()
        F.cross_entropy(net(tx), ty).backward()
        torch_optimizer.step()

    eval_net = copy.deepcopy(net).eval()

    def infer_same_batches():
        with torch.inference_mode():
            return torch.cat([eval_net(t_many[s]) for s in model.batches(len(t_many))])

    def infer_one_call():
        with torch.inference_mode():
            return eval_net(t_many)

    # input gradient, as an attack needs it: eval mode, frozen weights, loss summed
    attack_net = copy.deepcopy(net).eval()
    for parameter in attack_net.parameters():
        parameter.requires_grad_(False)

    def gradient():
        leaf = tx.detach().requires_grad_()
        F.cross_entropy(attack_net(leaf), ty, reduction="sum").backward()
        return leaf.grad

    return {"training step": {"pytorch": train},
            "inference": {"pytorch": infer_same_batches, "pytorch_one_call": infer_one_call},
            "input gradient": {"pytorch": gradient}}


def work_flops(model, measurement, batch, n_images):
    """Floating-point operations of the products (convolutions and dense layers) that one call
    of ``measurement`` computes: 2 multiply-adds per weight and output position."""
    n = n_images if measurement == "inference" else batch
    forward = []
    for layer, shape in zip(model.layers, model.layer_shapes()):
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            forward.append(2 * n * shape[1] * shape[2] * shape[0] * kh * kw * layer.in_channels)
        elif isinstance(layer, layers.Dense):
            forward.append(2 * n * layer.in_features * layer.out_features)
    if measurement == "inference":
        return sum(forward)
    if measurement == "input gradient":         # forward, then every layer's input gradient
        return 2 * sum(forward)
    return 3 * sum(forward) - forward[0]         # and weight gradients; no input's gradient


# ----------------------------------------------------------------------------- steady state

def worker(args):
    """A child process's whole life: build one framework's side of one measurement, warm up,
    time ``--repeats`` consecutive calls, print {label: [seconds, ...]} as JSON."""
    if args.worker == "sgemm":
        print(json.dumps(sgemm_times(args)))
        return
    device, sync = select_device(args)
    model = zoo.build(args.models[0], seed=0)
    x, y, x_many = data(model, args.batch, args.inference_images)
    if args.worker == "pytorch":
        load_torch(args.threads)
        functions = pytorch_functions(model, torch_twin(model).to(device), x, y, x_many, device)
    else:
        if device != "cpu":
            model.to("gpu")
        rng = backend.new_rng(0, backend.array_module_on(device_name(device)))
        functions = nnscratch_functions(model, x, y, x_many, device, rng)
    times = {}
    for label, fn in functions[args.measurement].items():
        for _ in range(args.warmup):
            fn()
        times[label] = []
        for _ in range(args.repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[label].append(time.perf_counter() - start)
    print(json.dumps(times))


def sgemm_times(args, size=1024):
    """Times of ``--repeats`` float32 (size x size) @ (size x size) products in NumPy."""
    gen = np.random.default_rng(0)
    a, b = (gen.random((size, size), dtype=np.float32) for _ in range(2))
    for _ in range(args.warmup):
        a @ b
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return {"sgemm": times, "flops": 2 * size ** 3}


def run_worker(args, framework, model_name=None, measurement=None):
    """Run ``worker`` in a fresh interpreter with this run's settings; returns its JSON."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", framework,
               "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--inference-images", str(args.inference_images)]
    if model_name is not None:
        command += ["--models", model_name, "--measurement", measurement]
    if args.gpu:
        command.append("--gpu")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the {framework} worker for {model_name} / {measurement} failed:\n"
                 f"{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def steady_state(args, device):
    """Every model and measurement, one process per framework, alternating over the rounds.
    Returns the rows of the table, each with the rate and share of the peak."""
    print("measuring the float32 matrix-product peak...", flush=True)
    sgemm = run_worker(args, "sgemm")
    peak = sgemm["flops"] / statistics.median(sgemm["sgemm"]) / 1e9
    print(f"peak: {peak:.0f} GFLOP/s (1024 x 1024 float32 product, {args.threads} threads)\n")
    print(TABLE_HEADER, flush=True)
    rows = []
    for name in args.models:
        model = zoo.build(name, seed=0)
        for measurement in MEASUREMENTS:
            times, round_medians = {}, {}
            for _ in range(args.rounds):
                for framework in ("nnscratch", "pytorch"):
                    for label, t in run_worker(args, framework, name, measurement).items():
                        times.setdefault(label, []).extend(t)
                        round_medians.setdefault(label, []).append(statistics.median(t))
            stats = {label: dict(summarize(t), round_medians_s=round_medians[label])
                     for label, t in times.items()}
            row = make_row(args, device, name, measurement, stats)
            flops = work_flops(model, measurement, args.batch, args.inference_images)
            row["gflop"] = flops / 1e9
            for label in stats:
                rate = flops / stats[label]["median_s"] / 1e9
                stats[label].update(gflops=rate, share_of_peak=rate / peak)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows, {"sgemm_gflops": peak, "sgemm_times_s": sgemm["sgemm"]}


# ----------------------------------------------------------------------------- the runs

def data(model, batch, n_images, seed=0):
    """Random images in [0, 1] of the model's input shape, and labels: timing does not depend
    on the content. Returns a batch x, its labels y, and n_images more images."""
    gen = np.random.default_rng(seed)
    num_classes = model.layer_shapes()[-1][0]
    x = gen.random((batch,) + model.input_shape, dtype=np.float32)
    y = gen.integers(0, num_classes, size=batch)
    x_many = gen.random((n_images,) + model.input_shape, dtype=np.float32)
    return x, y, x_many


def check_all(args, device):
    """Check every model against its PyTorch twin (asserting); returns the errors found."""
    checks = {}
    for name in args.models:
        model = zoo.build(name, seed=0)
        x, y, _ = data(model, args.batch, 0)
        net = torch_twin(model).to(device)
        if device != "cpu":
            model.to("gpu")
        checks[name] = check_twins(model, net, x, y, device)
        print(f"{name}: nnscratch and PyTorch agree ({format_check(checks[name])})", flush=True)
    return checks


def interleaved(args, device, sync):
    """The secondary figure: both frameworks in this one process, alternating single calls
    (``time_in_turns``). Returns the rows of the table."""
    print("\ninterleaved (single calls in turns in one process; flatters nnscratch):")
    print(TABLE_HEADER, flush=True)
    rows = []
    for name in args.models:
        model = zoo.build(name, seed=0)
        x, y, x_many = data(model, args.batch, args.inference_images)
        net = torch_twin(model).to(device)
        if device != "cpu":
            model.to("gpu")
        rng = backend.new_rng(0, backend.array_module_on(device_name(device)))
        ours = nnscratch_functions(model, x, y, x_many, device, rng)
        theirs = pytorch_functions(model, net, x, y, x_many, device)
        for measurement in MEASUREMENTS:
            contenders = {**ours[measurement], **theirs[measurement]}
            stats = time_in_turns(contenders, args.repeats, args.warmup, sync)
            rows.append(make_row(args, device, name, measurement, stats))
            print(format_row(rows[-1]), flush=True)
    return rows


def make_row(args, device, name, measurement, stats):
    """A row of the table: the stats of every label, the ratio nnscratch / PyTorch (the
    target's reference), and whether the target is met."""
    target = TARGETS[device_name(device)].get((name, measurement))
    ratio = stats["nnscratch"]["median_s"] / stats["pytorch"]["median_s"]
    row = {"model": name, "measurement": measurement, "work": work_description(measurement, args),
           **stats, "ratio": ratio, "target": target,
           "met": None if target is None else ratio <= target}
    if "pytorch_one_call" in stats:     # not the target's reference, but worth knowing
        row["ratio_one_call"] = stats["nnscratch"]["median_s"] / stats["pytorch_one_call"]["median_s"]
    return row


def work_description(measurement, args):
    if measurement == "inference":
        return f"{args.inference_images} images"
    return f"batch {args.batch}"


def format_check(check):
    differing = check["input_gradient_samples_differing"]
    ties = f" ({differing} sample(s) off: max-pool near-ties)" if differing else ""
    return (f"logits {check['logits_max_abs_diff']:.1e} abs, input gradient "
            f"{check['input_gradient_rel_error']:.1e} rel{ties}, parameter gradients "
            f"{check['param_gradient_rel_error']:.1e} rel")


def format_time(stats):
    """'12.34 ms [11.90-12.80]': median and interquartile range in milliseconds."""
    return (f"{1e3 * stats['median_s']:.2f} ms "
            f"[{1e3 * stats['q1_s']:.2f}-{1e3 * stats['q3_s']:.2f}]")


COLUMNS = "{:<11} {:<15} {:<12} {:>28} {:>28} {:>6}  {}"
TABLE_HEADER = COLUMNS.format("model", "measurement", "work", "nnscratch median [IQR]",
                              "PyTorch median [IQR]", "ratio", "target")


def format_row(row):
    verdict = "" if row["target"] is None else (
        f"<= {row['target']:.1f}x {'met' if row['met'] else 'NOT MET'}")
    line = COLUMNS.format(row["model"], row["measurement"], row["work"],
                          format_time(row["nnscratch"]), format_time(row["pytorch"]),
                          f"{row['ratio']:.2f}x", verdict)
    if "gflops" in row["nnscratch"]:
        line += "\n" + COLUMNS.format("", "", f"{row['gflop']:.2f} GFLOP",
                                      format_rate(row["nnscratch"]), format_rate(row["pytorch"]),
                                      "", "")
    if "pytorch_one_call" in row:  # for reference: PyTorch on all images in one call
        line += "\n" + COLUMNS.format("", "", "", "PyTorch in one call:",
                                      format_time(row["pytorch_one_call"]),
                                      f"{row['ratio_one_call']:.2f}x", "(no target)")
    return line


def format_rate(stats):
    """'96 GFLOP/s, 44% of peak'."""
    return f"{stats['gflops']:.0f} GFLOP/s, {100 * stats['share_of_peak']:.0f}% of peak"


def environment(args, device):
    """Everything needed to interpret the numbers later: machine, versions, threads, BLAS."""
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": device,
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "nnscratch": nnscratch.__version__,
        "threads": {
            "requested": args.threads,
            "environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
            "torch": torch.get_num_threads(),
        },
        "float": "float32",
        "batch": args.batch,
        "inference_images": args.inference_images,
        "nnscratch_inference_batch_size": zoo.build(args.models[0]).batch_size,
        "repeats": args.repeats,
        "rounds": args.rounds,
        "warmup": args.warmup,
    }
    if threadpoolctl is not None:
        info["threadpools"] = threadpoolctl.threadpool_info()
    try:
        info["numpy_config"] = np.show_config(mode="dicts")
    except TypeError:  # NumPy < 1.26 only prints its configuration
        info["numpy_config"] = None
    if device != "cpu":
        import cupy
        info["gpu"] = torch.cuda.get_device_name()
        info["cupy"] = cupy.__version__
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    return info


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def require_gpu():
    """Stop with a message naming what is missing, when the GPU comparison cannot run."""
    missing = []
    if not backend.gpu_available():
        missing.append("CuPy with a visible GPU (pip install 'nnscratch[gpu]'; "
                       "nnscratch.backend.gpu_available() is False)")
    if not torch.cuda.is_available():
        missing.append(f"a CUDA build of PyTorch (this one is {torch.__version__}, "
                       "torch.cuda.is_available() is False)")
    if missing:
        sys.exit("--gpu needs " + " and ".join(missing))


# ----------------------------------------------------------------------------- profiling

def layer_times(model, x, y, rng, repeats):
    """Median time of every layer's forward and backward in the training step, in seconds.

    The step is unrolled exactly as ``Sequential.compute_gradients`` runs it (forward with
    dropout, softmax cross-entropy, backward with parameter gradients), plus the SGD update.
    Returns [(name, type, forward_s, backward_s)] with rows for the loss and the optimizer.
    """
    optimizer = SGD(model, lr=0.01, momentum=0.9)
    clock = {}

    def timed(key, fn, *a, **kw):
        start = time.perf_counter()
        out = fn(*a, **kw)
        clock.setdefault(key, []).append(time.perf_counter() - start)
        return out

    for _ in range(repeats + 1):  # the first round warms up and is dropped below
        h = x
        for layer in model.layers:
            h = timed((layer.name, "forward"), layer.forward, h, training=True, rng=rng)
        losses, grad = timed(("loss", "forward"), softmax_cross_entropy, h, y)
        grad = grad * grad.dtype.type(1 / len(x))
        for layer in reversed(model.layers):
            grad = timed((layer.name, "backward"), layer.backward, grad, param_grads=True)
        timed(("SGD step", "forward"), optimizer.step)

    def median(key):
        return statistics.median(clock[key][1:]) if key in clock else 0.0

    rows = [(layer.name, type(layer).__name__, median((layer.name, "forward")),
             median((layer.name, "backward"))) for layer in model.layers]
    rows.append(("loss", "softmax_cross_entropy", median(("loss", "forward")), 0.0))
    rows.append(("SGD step", "optimizer", median(("SGD step", "forward")), 0.0))
    return rows


def print_layer_times(rows):
    total = sum(f + b for _, _, f, b in rows)
    print(f"{'layer':<12} {'type':<22} {'forward':>10} {'backward':>10} {'share':>7}")
    for name, kind, forward, backward in rows:
        print(f"{name:<12} {kind:<22} {1e3 * forward:8.2f}ms {1e3 * backward:8.2f}ms "
              f"{100 * (forward + backward) / total:6.1f}%")
    by_type = {}
    for _, kind, forward, backward in rows:
        f, b = by_type.get(kind, (0.0, 0.0))
        by_type[kind] = (f + forward, b + backward)
    print("by layer type:")
    for kind, (forward, backward) in sorted(by_type.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {kind:<22} {1e3 * forward:8.2f}ms {1e3 * backward:8.2f}ms "
              f"{100 * (forward + backward) / total:6.1f}%")
    print(f"  {'total':<22} {1e3 * total:8.2f}ms")
    return total


def profile(args):
    """Per-layer times, then cProfile's top functions, of nnscratch's training step."""
    report = {}
    for name in args.models:
        model = zoo.build(name, seed=0)
        x, y, _ = data(model, args.batch, 0)
        rng = backend.new_rng(0)
        print(f"\n=== {name}: training step, batch {args.batch}, {args.threads} threads ===")
        rows = layer_times(model, x, y, rng, args.repeats)
        total = print_layer_times(rows)
        optimizer = SGD(model, lr=0.01, momentum=0.9)
        for _ in range(args.warmup):
            model.compute_gradients(x, y, rng)
            optimizer.step()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.repeats):
            model.compute_gradients(x, y, rng)
            optimizer.step()
        profiler.disable()
        for order in ("cumulative", "tottime"):
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(order).print_stats(25)
            print(f"\n--- cProfile, {args.repeats} steps, top 25 by {order} ---")
            print(text.getvalue().split("\n", 4)[-1].strip("\n"))
        report[name] = {"layers": [{"name": n, "type": k, "forward_s": f, "backward_s": b}
                                   for n, k, f, b in rows], "total_s": total}
    return report


# ----------------------------------------------------------------------------- main

def select_device(args):
    """("cpu" or "cuda", sync): sync() waits for the GPU to finish (CuPy's work, and PyTorch's
    once it is loaded) before the clock is read; a no-op on the CPU."""
    if not args.gpu:
        return "cpu", lambda: None
    import cupy

    def sync():
        cupy.cuda.Device().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    return "cuda", sync


def main(argv=None):
    args = parse_args(argv)
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(limits=args.threads)
    if args.worker:
        worker(args)
        return
    load_torch(args.threads)
    if args.profile:
        report = profile(args)
        out = args.out.with_name(args.out.stem + "_profile.json")
        write_json(out, {"environment": environment(args, "cpu"), "profile": report})
        return
    if args.gpu:
        require_gpu()
    device, sync = select_device(args)
    print(f"nnscratch {nnscratch.__version__} (NumPy {np.__version__}) vs PyTorch "
          f"{torch.__version__}, {device}, {args.threads} threads, float32; steady state: "
          f"{args.rounds} rounds of one process per framework, {args.warmup} warm-up calls "
          f"then {args.repeats} timed calls each\n", flush=True)
    checks = check_all(args, device)
    print()
    rows, peak = steady_state(args, device)
    secondary = interleaved(args, device, sync) if args.interleaved else None
    unmet = [f"{r['model']} {r['measurement']}" for r in rows if r["met"] is False]
    print("\nall targets met" if not unmet else f"\ntargets not met: {', '.join(unmet)}")
    write_json(args.out, {
        "environment": environment(args, device),
        "method": "steady state: one process per framework, consecutive calls, alternating "
                  "rounds",
        "targets": {f"{m} / {k}": t for (m, k), t in TARGETS[device_name(device)].items()},
        "checks": checks,
        "peak": peak,
        "results": rows,
        "interleaved": secondary,
    })


def write_json(path, content):
    files.atomic_write(path, json.dumps(content, indent=2, default=str) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
