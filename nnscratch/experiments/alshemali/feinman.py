"""Feinman et al.'s kernel-density + Bayesian-uncertainty detector ("Detecting adversarial
samples from artifacts", 2017), the comparison point Alshemali et al. cite (ROC-AUC 90.57%
FGSM, 97.23% BIM-A, 98.13% JSMA on MNIST), reproduced on ``feinman_cnn``.

Settings from Feinman et al.'s released code where the paper is silent: FGSM eps 0.3; BIM-A
eps 0.3 in steps of 0.01 (50 steps), each image stopping at its first misclassification;
JSMA theta 1, gamma 0.1; KDE bandwidth 1.20 on the last hidden layer, fitted on the training
images. Their code trains the logistic regression on every test sample and reports the
ROC-AUC on those same samples; here the correctly classified images among the first
``feinman_images`` test images are split in two halves, the regression is fitted on the first
and the ROC-AUC is reported on both ("fit", as they report, and "held out"). Noisy negatives:
see ``KDEUncertaintyDetector``. The network is trained with ``zoo.RECIPES["feinman_cnn"]`` for
``feinman_epochs`` (their code: 10 epochs of Adadelta; the paper gives no recipe).

Beside it, on the same images, the ROC-AUC of Alshemali et al.'s uncertainty score alone
(``mc_uncertainty``: the standard deviation of the provisional class's probability over the
MC-dropout passes) and of each of Feinman's two features, so the defences meet on one footing.
"""

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from nnscratch import zoo
from nnscratch.attacks import BIM, FGSM, JSMA
from nnscratch.defenses.kde import KDEUncertaintyDetector
from nnscratch.defenses.uncertainty import mc_uncertainty
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy, mean, mnist, train

FEINMAN_ATTACKS = ("fgsm", "bim_a", "jsma")


def feinman_attack(kind, cfg):
    """Feinman et al.'s attack ``kind`` with its settings ``feinman_{kind}`` (their code's)."""
    settings = cfg[f"feinman_{kind}"]
    if kind == "fgsm":
        return FGSM(settings["eps"])
    if kind == "bim_a":
        return BIM(settings["eps"], step=settings["step"], steps=settings["steps"],
                   early_stop=True)
    return JSMA(theta=settings["theta"], gamma=settings["gamma"], targeted=False)


def feinman_network(cfg, inputs, ctx):
    """feinman_cnn trained on the training images less the validation split."""
    model = zoo.build("feinman_cnn", seed=cfg["seed"])
    history = train(model, "feinman_cnn", mnist("train-rest", cfg["train_images"]), ctx,
                    cfg["feinman_epochs"], cfg["seed"])
    x, y = mnist("test", cfg["test_images"])
    return {"model": model, "test_accuracy": accuracy(model, x, y),
            "training_seconds": float(sum(history["seconds"]))}


def fitted_detector(cfg, model, x, y, x_adv):
    """Feinman's detector, its KDEs on the training images, its regression on (x, x_adv)."""
    density_data = mnist("train-rest", cfg["train_images"])
    return KDEUncertaintyDetector(n_samples=cfg["mc_samples"], seed=cfg["seed"]).fit(
        model, x, y, x_adv, density_data=density_data)


def correct_halves(cfg, model):
    """The correctly classified images of the first ``feinman_images`` test images, in two
    halves: (x_fit, y_fit), (x_held, y_held)."""
    x, y = mnist("test", cfg["feinman_images"])
    correct = np.asarray(model.predict(x)) == y
    x, y = x[correct], y[correct]
    middle = len(y) // 2
    return (x[:middle], y[:middle]), (x[middle:], y[middle:])


def auc(clean_scores, adversarial_scores):
    labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(adversarial_scores))]
    return float(roc_auc_score(labels, np.r_[clean_scores, adversarial_scores]))


def curve(clean_scores, adversarial_scores, points=101):
    """An ROC curve resampled at ``points`` false-positive rates: (2, points) float32."""
    labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(adversarial_scores))]
    fpr, tpr, _ = roc_curve(labels, np.r_[clean_scores, adversarial_scores])
    grid = np.linspace(0, 1, points)
    return np.stack([grid, np.interp(grid, fpr, tpr)]).astype(np.float32)


def feinman(kind):
    """The stage that attacks feinman_cnn with ``kind`` and measures both detectors' ROC-AUC."""

    def run(cfg, inputs, ctx):
        model = inputs["feinman_network"]["model"]
        (x_fit, y_fit), (x_held, y_held) = correct_halves(cfg, model)
        attack = feinman_attack(kind, cfg)
        adv_fit = evaluate_attack(model, attack, x_fit, y_fit, batch=len(y_fit))
        adv_held = evaluate_attack(model, attack, x_held, y_held, batch=len(y_held))
        detector = fitted_detector(cfg, model, x_fit, y_fit, adv_fit.x_adv)
        out = {"images": len(y_fit) + len(y_held),
               "success": mean(np.r_[adv_fit.success, adv_held.success]),
               "mean_l2": mean(np.r_[adv_fit.norms["l2"], adv_held.norms["l2"]])}
        for part, x, x_adv in (("fit", x_fit, adv_fit.x_adv), ("held_out", x_held, adv_held.x_adv)):
            x_adv = np.asarray(x_adv)
            density_clean, uncertainty_clean = detector.features(x)
            density_adv, uncertainty_adv = detector.features(x_adv)
            clean = detector.decision_from_features(density_clean, uncertainty_clean)
            adversarial = detector.decision_from_features(density_adv, uncertainty_adv)
            ours_clean = mc_uncertainty(model, x, cfg["mc_samples"], cfg["seed"])[0]
            ours_adv = mc_uncertainty(model, x_adv, cfg["mc_samples"], cfg["seed"])[0]
            out[part] = {"kde_bu": auc(np.asarray(clean), np.asarray(adversarial)),
                         "density": auc(-np.asarray(density_clean), -np.asarray(density_adv)),
                         "feinman_uncertainty": auc(np.asarray(uncertainty_clean),
                                                    np.asarray(uncertainty_adv)),
                         "alshemali_uncertainty": auc(np.asarray(ours_clean),
                                                      np.asarray(ours_adv))}
            out[f"{part}_curve"] = curve(np.asarray(clean), np.asarray(adversarial))
        ctx.log(f"{kind}: ROC-AUC fit {out['fit']['kde_bu']:.4f}, "
                f"held out {out['held_out']['kde_bu']:.4f}")
        return out

    run.__name__ = f"feinman_{kind}"
    return run
