"""The cost of a defended gradient: DNR's ``score_gradient`` and OpenMax's (``OpenMaxModel``'s
``loss_gradient``) on dnr_cnn, beside the network's own ``loss_gradient``, for one batch.

    python benchmarks/defenses.py                       # 100 images, 15 repeats, 1 thread
    python benchmarks/defenses.py --repeats 5 --out /tmp/defenses.json

Two measures per gradient:
- passes, exact: the network passes one call makes, counted on the layers themselves (every
  forward and backward call of each layer, wrapped), so partial passes (up to a tap) count by
  the layers they run; "forward" and "backward" are the calls of the first layer (whole or
  partial passes through the network), "layer calls" all layer calls;
- time: the median and the interquartile range of ``--repeats`` calls after one warm-up call.

The network is dnr_cnn trained for three short epochs on 2,000 MNIST images (OpenMax needs
``tailsize`` correctly classified images of every class; timing does not depend on accuracy);
DNR is fitted on 300 images (x_val 100), OpenMax on 1,000 with tailsize 5. The script uses only
the public interface, so that it runs unchanged on older versions of the package
(``PYTHONPATH`` chooses which).
"""

import argparse
import json
import os
import time

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--images", type=int, default=100)
ap.add_argument("--repeats", type=int, default=15)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--out", default=None)
args = ap.parse_args()
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import numpy as np                                           # noqa: E402  (after the threads)

from nnscratch import data, training, zoo                    # noqa: E402
from nnscratch.defenses import DeepNeuralRejection, OpenMax  # noqa: E402
from nnscratch.optim import SGD                              # noqa: E402


def counted(model):
    """Wrap every layer's forward and backward with a counter; returns the counts dict."""
    counts = {"forward": 0, "backward": 0, "layer calls": 0}
    for i, layer in enumerate(model.layers):
        for kind in ("forward", "backward"):
            def wrapper(*a, _inner=getattr(layer, kind), _kind=kind, _first=i == 0, **k):
                counts["layer calls"] += 1
                counts[_kind] += _first
                return _inner(*a, **k)
            setattr(layer, kind, wrapper)
    return counts


def measure(name, call, counts):
    call()                                                   # warm-up
    before = dict(counts)
    call()
    passes = {key: counts[key] - before[key] for key in counts}
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    q1, median, q3 = np.percentile(np.array(times) * 1e3, [25, 50, 75])
    row = {"passes": passes, "median_ms": median, "iqr_ms": [q1, q3], "times_ms":
           [t * 1e3 for t in times]}
    print(f"{name:26s} forward {passes['forward']:2d}  backward {passes['backward']:2d}  "
          f"layer calls {passes['layer calls']:3d}   {median:8.1f} ms  (IQR {q1:.1f}-{q3:.1f})",
          flush=True)
    return row


def main():
    x_all, y_all = data.load("mnist", split="train", limit=2000, seed=0)
    model = zoo.build("dnr_cnn", seed=0)
    training.fit(model, SGD(model, lr=0.05, momentum=0.9), (x_all, y_all), epochs=3,
                 batch_size=64, warmup_steps=10, progress=False)
    dnr = DeepNeuralRejection().fit(model, x_all[:300], y_all[:300], x_val=x_all[300:400])
    openmax = OpenMax(layer="relu_6", tailsize=5).fit(model, x_all[:1000], y_all[:1000])
    om_model = openmax.as_model()
    x, y = x_all[1000:1000 + args.images], y_all[1000:1000 + args.images]
    counts = counted(model)
    rows = {"network loss_gradient": measure("network loss_gradient",
                                             lambda: model.loss_gradient(x, y), counts),
            "dnr score_gradient": measure("dnr score_gradient",
                                          lambda: dnr.score_gradient(x), counts),
            "openmax loss_gradient": measure("openmax loss_gradient",
                                             lambda: om_model.loss_gradient(x, y), counts)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"images": args.images, "repeats": args.repeats, "threads": args.threads,
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
