"""``nnscratch gan``: the report's GAN trained on MNIST (or CIFAR-10 when cached), into one
folder, resumable.

    nnscratch gan                         # MNIST, 12,000 images, 6 epochs, into ./gan-mnist:
                                          # about 25 min on 2 cores (results/gan)
    nnscratch gan --images 60000          # all of MNIST: about 20 min an epoch on 2 cores
    nnscratch gan --quick                 # 1,024 images, 5 short epochs, checked: 2 minutes

The folder: config.json (the settings), gan_checkpoint.npz (after every epoch: ``--resume``
continues from it), samples/epoch_NNN.png (the same 64 latent points every epoch), losses.png,
history.json, generator.npz and discriminator.npz (``nnscratch.io``), and summary.json: the
time per epoch and, on MNIST, the judge's verdict (``nnscratch.gan.judge``) on 1,000 generated
images beside 1,000 real test images, from ``mnist_cnn_harms`` trained one epoch (Adam) on
10,000 MNIST training images.

``--quick`` checks what a GAN whose generator does not learn fails (``dynamics``): the
discriminator's accuracy, the mean of its accuracy on the real and on the generated images of
an epoch (0.5 is chance), first moves away from chance (at least 0.85 in some epoch: it tells
the generator's first images from real ones) and then comes back by at least 0.1 by the last
epoch. A generator that learns through the discriminator's input gradient makes it come back;
so could a discriminator that degrades on its own, which the judge's measures in summary.json
tell apart. It exits with status 1 when they fail. On the quick settings (measured 2026-12-03): 0.86, 0.96,
0.91, 0.84, 0.80 over the five epochs of 64 steps.
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from nnscratch import data, files, io, plots, zoo
from nnscratch.backend import new_rng
from nnscratch.commands.options import COUNT, EPOCHS, PATH, SEED
from nnscratch.gan import GAN, discriminator, generator, train
from nnscratch.gan.judge import judge
from nnscratch.training import fit_recipe

CONFIG = "config.json"
DEFAULTS = {"images": 12_000, "epochs": 6, "width": 64, "batch_size": 128}
QUICK = {"images": 1024, "epochs": 5, "width": 32, "batch_size": 32}
PEAK, FALL = 0.85, 0.1          # the quick run's check (module docstring)
JUDGED = 1000
JUDGE_TRAINING = 10_000


def add_arguments(parser):
    parser.add_argument("--dataset", choices=("mnist", "cifar10"), default="mnist",
                        help="what to learn to generate (default mnist; cifar10 needs "
                             "`nnscratch data fetch cifar10`)")
    parser.add_argument("--out", type=PATH, help="the run's folder (default ./gan-DATASET, "
                                                 "./gan-DATASET-quick with --quick)")
    parser.add_argument("--epochs", type=EPOCHS, help="passes over the images (6)")
    parser.add_argument("--images", type=COUNT,
                        help="training images, balanced over the classes (12,000)")
    parser.add_argument("--width", type=COUNT,
                        help="channels of the generator's transposed convolutions (64; the "
                             "report's 238 is some 8 times slower)")
    parser.add_argument("--batch-size", type=COUNT,
                        help="latent points per generator step; half as many real and half "
                             "generated images per discriminator step (128)")
    parser.add_argument("--seed", type=SEED, default=0, help="weights, order, noise (0)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['images']:,} images, {QUICK['epochs']} epochs, width "
                             f"{QUICK['width']}, batch {QUICK['batch_size']}, checked: the "
                             "discriminator's accuracy leaves chance and comes back (exit 1 "
                             "if not)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its last checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def settings(args):
    """The run's settings: the options given, else ``DEFAULTS``; ``QUICK`` with --quick, which
    refuses the options it sets."""
    given = {key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None}
    if args.quick and given:
        raise ValueError(f"--quick sets {', '.join(QUICK)} itself: leave out "
                         + ", ".join(f"--{key.replace('_', '-')}" for key in given))
    return {"dataset": args.dataset, **(QUICK if args.quick else {**DEFAULTS, **given}),
            "seed": args.seed, "latent": 100, "lr": 2e-4, "beta1": 0.5}


def check_folder(out, config, resume):
    """Refuse, before any write, a folder that holds something else than this run."""
    files.refuse_unwritable(out)
    if not out.exists() or not any(out.iterdir()):
        return
    if not resume:
        raise ValueError(f"{out} exists and is not empty: pass --resume to continue the run in "
                         "it, or choose another --out")
    saved = json.loads((out / CONFIG).read_text()) if (out / CONFIG).is_file() else None
    if saved is None:
        raise ValueError(f"--resume: {out} holds no {CONFIG} of `nnscratch gan`")
    differ = [f"{key} {saved.get(key)} there, {value} now" for key, value in config.items()
              if key != "epochs" and saved.get(key) != value]
    if differ:
        raise ValueError(f"--resume with other settings than the run in {out}: "
                         + "; ".join(differ))


def run(args):
    config = settings(args)
    out = Path(args.out or f"gan-{args.dataset}{'-quick' if args.quick else ''}")
    check_folder(out, config, args.resume)
    x, _ = data.load(config["dataset"], "train", limit=config["images"], seed=config["seed"])
    shape = x.shape[1:]
    gan = GAN(generator(shape, config["latent"], config["width"], seed=config["seed"]),
              discriminator(shape, seed=config["seed"] + 1), config["lr"], config["beta1"])
    out.mkdir(parents=True, exist_ok=True)
    with files.locked(out):
        files.atomic_write(out / CONFIG, json.dumps(config, indent=2))
        fixed = gan.noise(64, new_rng(config["seed"]))       # the same points every epoch

        def after_epoch(epoch, gan, history):
            images = (gan.generator.forward(fixed) + 1) / 2
            plots.image_grid(images, out / "samples" / f"epoch_{epoch + 1:03d}.png",
                             title=f"epoch {epoch + 1}")
            print(f"epoch {epoch + 1}: " + ", ".join(
                f"{key} {values[-1]:.3f}" for key, values in history.items()))

        (out / "samples").mkdir(exist_ok=True)
        print(f"training the GAN on {len(x)} {config['dataset']} images: {json.dumps(config)}")
        history = train(gan, x, config["epochs"], config["batch_size"], config["seed"],
                        checkpoint_dir=out, resume=args.resume, progress=not args.quiet,
                        after_epoch=after_epoch)
        summary = {"seconds_per_epoch": float(np.median(history["seconds"])),
                   "epochs": len(history["g_loss"])}
        if config["dataset"] == "mnist":
            summary.update(verdict(gan, config["seed"]))
        if args.quick:
            summary["checks"] = [{"check": what, "passed": passed}
                                 for what, passed in dynamics(history)]
        io.save(gan.generator, out / "generator.npz")
        io.save(gan.discriminator, out / "discriminator.npz")
        files.atomic_write(out / "history.json", json.dumps(history, indent=2))
        files.atomic_write(out / "summary.json", json.dumps(summary, indent=2))
        plots.gan_losses(history, out / "losses.png")
    print(json.dumps(summary))
    print(f"wrote {out}: samples/, losses.png, history.json, summary.json, generator.npz")
    failed = [check["check"] for check in summary.get("checks", []) if not check["passed"]]
    if failed:
        print(f"nnscratch: error: the quick run's checks failed: {'; '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


def dynamics(history):
    """[(what, passed)]: the discriminator's accuracy per epoch leaves chance and comes back
    (module docstring)."""
    accuracy = [(real + fake) / 2 for real, fake in zip(history["d_accuracy_real"],
                                                        history["d_accuracy_fake"])]
    peak = int(np.argmax(accuracy))
    said = ", ".join(f"{a:.2f}" for a in accuracy)
    return [(f"the discriminator's accuracy leaves chance: at least {PEAK} in some epoch "
             f"({said})", accuracy[peak] >= PEAK),
            (f"the discriminator's accuracy comes back: the last epoch's at least {FALL} below "
             f"the highest ({said})",
             accuracy[-1] <= accuracy[peak] - FALL)]


def verdict(gan, seed):
    """The judge's measures on generated and on real images (module docstring)."""
    classifier = zoo.build("mnist_cnn_harms", seed=seed)
    began = time.perf_counter()
    fit_recipe(classifier, dataclasses.replace(zoo.RECIPES["mnist_cnn_harms"], epochs=1),
               data.load("mnist", "train", limit=JUDGE_TRAINING), seed=seed, progress=False)
    real = data.load("mnist", "test", limit=JUDGED)[0]
    return {"judge_seconds": time.perf_counter() - began,
            "generated": judge(classifier, gan.sample(JUDGED, new_rng(seed + 1))),
            "real": judge(classifier, real)}


def interrupted(args, argv):
    return "interrupted; the same command with --resume continues from the last epoch"
