"""Beyond Alshemali et al.: both detectors against attackers who know them.

The paper cites Carlini & Wagner's "bypassing ten detection methods" but never attacks its
own detector. Here, at the non-adaptive attacks' L-inf budgets:

- Uncertainty + crops (LeNet): PGD with expectation over transformation (EOT) over the
  dropout masks. Each step averages, over ``eot_samples`` fresh masks s, the gradient of

      L(x') = mean_s CE_s(x', t) + ``uncertainty_weight`` * std_s p_s(t | x')

  where t is the most likely class other than y at x, CE_s and p_s the cross-entropy and
  softmax probability of one stochastic pass (``loss_gradient(x', t, mc_seed)``, whose
  probability is p_s = exp(-CE_s) and dp_s/dx = -p_s dCE_s/dx), so the step both moves
  towards t and makes the passes agree, the statistic the detector thresholds. Descent on the
  sign of the gradient (L-inf), ``adaptive_steps`` steps of eps / 10 (Madry et al.'s 2.5 eps /
  steps for 25 steps, kept at eps / 10 for more), projected on the eps-ball and the box.
- Feinman et al.'s detector (feinman_cnn): PGD ascending the classifier's loss at y while
  descending the detector's decision value through its KDE term (``score_gradient``), each
  gradient normalised to unit L2 per image and the two added with weight 1, sign steps as above.

Reported on the adversarials' images and on as many clean test images: the detection accuracy
and the accuracy on the images flagged clean, beside the non-adaptive attack on the same images.
"""

import numpy as np

from nnscratch.attacks import EOTPGD, DetectorAwarePGD
from nnscratch.attacks.saliency import runner_up
from nnscratch.defenses.uncertainty import UncertaintyCropDetector
from nnscratch.experiments.alshemali.feinman import (correct_halves, feinman_attack,
                                                     fitted_detector)
from nnscratch.experiments.alshemali.stages import (clean_flagged_accuracy, halves,
                                                    outcome_counts)
from nnscratch.experiments.common import mnist


def evaluate(predict, x_clean, y_clean, x_adv, y_adv):
    """Detection counts and the accuracy on flagged-clean images of a clean + adversarial mix;
    ``predict`` gives a label or -1 (adversarial)."""
    labels = np.r_[np.asarray(predict(x_clean)), np.asarray(predict(x_adv))]
    y = np.r_[y_clean, y_adv]
    is_adversarial = np.arange(len(y)) >= len(y_clean)
    flagged = labels == -1
    return dict(outcome_counts(is_adversarial, flagged),
                clean_flagged_accuracy=clean_flagged_accuracy(labels, y, flagged))


def adaptive_uncertainty(cfg, inputs, ctx):
    """EOT PGD against the uncertainty + crop detector at the FGSM and BIM budgets."""
    model = inputs["lenet"]["model"]
    x, y = mnist("test", cfg["test_images"])
    n = cfg["adaptive_images"]
    x_clean, y_clean = x[:n], y[:n]
    out = {"images": n}
    for kind in ("fgsm", "bim"):
        made, fitted = inputs[f"adversarials_{kind}"], inputs[f"detector_{kind}"]
        detector = UncertaintyCropDetector(n_samples=cfg["mc_samples"], low=fitted["low"],
                                           high=fitted["high"], votes=cfg["votes"],
                                           crop=cfg["crop"], seed=cfg["seed"])
        detector.fit(model, made["validation_x_clean"], None, made["validation_x_adv"])
        eps = made["setting"]
        x_source, y_source = halves(model, x, y)[2][:n], made["y_adv"][:n]
        attack = EOTPGD(eps, step=eps / 10, steps=cfg["adaptive_steps"], random_start=False,
                        seed=cfg["seed"], samples=cfg["eot_samples"],
                        uncertainty_weight=cfg["uncertainty_weight"], targeted=True)
        target = runner_up(model.logits(x_source), y_source)
        adaptive = attack.generate(model, x_source, y_source, target=target).x_adv
        out[kind] = {"eps": eps,
                     "non_adaptive": evaluate(detector.predict, x_clean, y_clean,
                                              made["x_adv"][:n], y_source),
                     "adaptive": evaluate(detector.predict, x_clean, y_clean, adaptive,
                                          y_source),
                     "adaptive_misclassified": float(np.mean(
                         np.asarray(model.predict(adaptive)) != y_source))}
        ctx.log(f"{kind} eps {eps:.3f}: {out[kind]}")
    return out


def adaptive_feinman(cfg, inputs, ctx):
    """PGD through Feinman's KDE term at BIM-A's budget (``feinman_bim_a``'s eps), on the
    held-out half."""
    model = inputs["feinman_network"]["model"]
    (x_fit, y_fit), (x_held, y_held) = correct_halves(cfg, model)
    fit_adv = feinman_attack("bim_a", cfg).generate(model, x_fit, y_fit)
    detector = fitted_detector(cfg, model, x_fit, y_fit, np.asarray(fit_adv.x_adv))
    non_adaptive = np.asarray(feinman_attack("bim_a", cfg).generate(model, x_held, y_held).x_adv)
    eps = cfg["feinman_bim_a"]["eps"]
    attack = DetectorAwarePGD(detector, eps, step=eps / 10, steps=cfg["adaptive_steps"],
                              random_start=False)
    adaptive = attack.generate(model, x_held, y_held).x_adv
    out = {"images": len(y_held), "eps": eps,
           "non_adaptive": evaluate(detector.predict, x_held, y_held, non_adaptive, y_held),
           "adaptive": evaluate(detector.predict, x_held, y_held, adaptive, y_held),
           "adaptive_misclassified": float(np.mean(np.asarray(model.predict(adaptive)) != y_held))}
    ctx.log(f"KDE-aware PGD: {out}")
    return out
