"""The stages of the Alshemali, Graham & Kalita reproduction ("Toward Robust Image
Classification"): LeNet with dropout, FGSM, JSMA and BIM mixed sets whose strengths are chosen
on validation data, and the uncertainty + crop-vote detector of their Algorithm 1.
``__init__.py`` declares the stages, their settings and their order.

Choices the paper leaves open, and ours:

- Network: ``zoo.build("lenet", dropout=0.5)`` (dropout after the last pooling and after ip1,
  as the paper says), trained with the LeNet recipe for ``epochs`` (the paper: 98% accuracy).
- Mixed sets: the clean images are the first half of the test images, the adversarials are
  made from the correctly classified images of the second half, so no image appears twice.
  Every adversarial counts as adversarial (the positive class) whether or not the attack
  changed its class; how many did not is reported. Table 1 is the undefended network's
  accuracy on the whole mix; Tables 2 and 3 leave out the clean images it misclassifies, as
  the paper does ("we removed clean images which were misclassified").
- Strengths (the paper gives none): chosen on the validation split (5,000 training images held
  out), never on the test images, so that the undefended accuracy on a validation mix built the
  same way comes closest to Table 1 (59% FGSM, 52% JSMA, 50% BIM):
    FGSM  eps, by bisection;
    BIM   eps, by bisection, with cleverhans 2.0's defaults scaled together (eps 0.3,
          eps_iter 0.05, 10 iterations: step = eps / 6, 10 steps), the library the paper used;
    JSMA  gamma (the share of pixels it may change), theta = +1, the target the most likely
          other class: one run at ``jsma_max_gamma`` gives every smaller gamma, since JSMA's
          path does not depend on gamma, only where it is cut off (an image succeeds at gamma
          when it succeeded within floor(gamma * 784 / 2) pair steps).
- Detector thresholds: fitted per attack on the validation mix of that attack
  (``UncertaintyCropDetector.fit``: information gain), as the paper ran each attack apart.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

from nnscratch import zoo
from nnscratch.attacks import BIM, FGSM, JSMA
from nnscratch.defenses.uncertainty import UncertaintyCropDetector
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy, mean, mnist, train

ATTACKS = ("fgsm", "jsma", "bim")
PIXELS = 28 * 28


def lenet(cfg, inputs, ctx):
    """LeNet with dropout ``dropout``, trained on the training images less the validation
    split."""
    model = zoo.build("lenet", seed=cfg["seed"], dropout=cfg["dropout"])
    history = train(model, "lenet", mnist("train-rest", cfg["train_images"]), ctx, cfg["epochs"],
                    cfg["seed"])
    x, y = mnist("test", cfg["test_images"])
    return {"model": model, "test_accuracy": accuracy(model, x, y),
            "training_seconds": float(sum(history["seconds"]))}


def halves(model, x, y):
    """A mix's two halves: the clean first half, and the correctly classified images of the
    second half (the attack's sources). Returns (x_clean, y_clean, x_source, y_source)."""
    middle = len(x) // 2
    x_source, y_source = x[middle:], y[middle:]
    correct = np.asarray(model.predict(x_source)) == y_source
    return x[:middle], y[:middle], x_source[correct], y_source[correct]


def mixed_accuracy(model, x_clean, y_clean, attacked):
    """The undefended accuracy on the mix of clean images and the adversarials of the
    ``Evaluation`` ``attacked`` (Table 1)."""
    correct = np.sum(np.asarray(model.predict(x_clean)) == y_clean) + np.sum(attacked.robust)
    return float(correct / (len(y_clean) + len(attacked.y)))


def make_attack(kind, setting, cfg):
    """``kind`` at strength ``setting`` (FGSM's and BIM's eps, JSMA's gamma); BIM takes
    ``bim_steps`` steps of eps / ``bim_step_divisor``, JSMA changes pixels by ``jsma_theta``."""
    if kind == "fgsm":
        return FGSM(setting)
    if kind == "bim":
        return BIM(setting, step=setting / cfg["bim_step_divisor"], steps=cfg["bim_steps"])
    return JSMA(theta=cfg["jsma_theta"], gamma=setting, targeted=False)


def bisect(accuracy_at, target, low, high, iterations):
    """The setting in [low, high] whose accuracy comes closest to ``target``, by bisection
    (accuracy falls as the setting grows). Returns (setting, accuracy, trace [[s, acc], ...])."""
    trace = []
    for _ in range(iterations):
        middle = (low + high) / 2
        measured = accuracy_at(middle)
        trace.append([middle, measured])
        low, high = (middle, high) if measured > target else (low, middle)
    setting, measured = min(trace, key=lambda point: abs(point[1] - target))
    return setting, measured, trace


def jsma_gamma(model, clean, source, target, cfg):
    """JSMA's gamma from one run at ``jsma_max_gamma``: the gamma whose accuracy comes closest
    to the target's, among the cut-offs of 2, 4, ... pixels. (setting, accuracy, trace)."""
    x_clean, y_clean = clean
    x_source, y_source = source
    max_gamma = cfg["jsma_max_gamma"]
    result = make_attack("jsma", max_gamma, cfg).generate(model, x_source, y_source)
    steps = np.asarray(result.info["steps"])
    success = np.asarray(result.success, dtype=bool)
    clean_correct = np.sum(np.asarray(model.predict(x_clean)) == y_clean)
    total = len(y_clean) + len(y_source)
    trace = []
    for budget in range(1, JSMA(gamma=max_gamma).budget(PIXELS) + 1):
        fooled = np.sum(success & (steps <= budget))
        gamma = (2 * budget + 1) / PIXELS          # floor(gamma * 784 / 2) == budget exactly
        trace.append([gamma, float((clean_correct + len(y_source) - fooled) / total)])
    setting, measured = min(trace, key=lambda point: abs(point[1] - target))
    return setting, measured, trace


def adversarials(kind):
    """The stage that chooses ``kind``'s strength on the validation mix and makes the
    adversarials of that mix and of the test mix."""

    def run(cfg, inputs, ctx):
        model = inputs["lenet"]["model"]
        target = cfg["table1_targets"][kind]
        x_val, y_val = mnist("validation", cfg["validation_images"])
        xc, yc, xs, ys = halves(model, x_val, y_val)
        search = cfg["calibration_images"]
        xs_search, ys_search = xs[:search], ys[:search]
        xc_search, yc_search = xc[:search], yc[:search]
        if kind == "jsma":
            setting, measured, trace = jsma_gamma(model, (xc_search, yc_search),
                                                  (xs_search, ys_search), target, cfg)
        else:
            def accuracy_at(setting):
                attacked = evaluate_attack(model, make_attack(kind, setting, cfg), xs_search,
                                           ys_search, batch=len(ys_search))
                return mixed_accuracy(model, xc_search, yc_search, attacked)
            setting, measured, trace = bisect(accuracy_at, target, 0.0, cfg["max_eps"],
                                              cfg["bisection_steps"])
        ctx.log(f"{kind}: setting {setting:.4g} gives {100 * measured:.1f}% on the validation "
                f"mix (target {100 * target:.0f}%)")
        attack = make_attack(kind, setting, cfg)
        val_adv = attack.generate(model, xs, ys)
        x, y = mnist("test", cfg["test_images"])
        x_clean, y_clean, x_source, y_source = halves(model, x, y)
        test_adv = evaluate_attack(model, attack, x_source, y_source, batch=len(y_source))
        success = test_adv.success.astype(bool)
        return {"setting": float(setting), "validation_accuracy": measured, "trace": trace,
                "validation_x_clean": xc, "validation_x_adv": np.asarray(val_adv.x_adv),
                "x_adv": test_adv.x_adv, "y_adv": y_source,
                "failed": int(np.sum(~success)), "adversarials": len(success),
                "mean_l2": mean(test_adv.norms["l2"][success]),
                "mean_l0": mean(test_adv.norms["l0"][success]),
                "table1_accuracy": mixed_accuracy(model, x_clean, y_clean, test_adv)}

    run.__name__ = f"adversarials_{kind}"
    return run


def outcome_counts(is_adversarial, flagged):
    """TP, FP, TN, FN with adversarial the positive class, and the detection accuracy."""
    tp = int(np.sum(is_adversarial & flagged))
    fp = int(np.sum(~is_adversarial & flagged))
    tn = int(np.sum(~is_adversarial & ~flagged))
    fn = int(np.sum(is_adversarial & ~flagged))
    return {"tp": tp, "fp": fp, "tn": tn, "fn": fn, "accuracy": (tp + tn) / max(tp + fp + tn + fn, 1)}


def clean_flagged_accuracy(labels, y, flagged):
    """Table 3: the share of the images flagged clean whose output class is their true class
    (adversarials flagged clean count against it when their class is wrong)."""
    accepted = ~flagged
    return mean(labels[accepted] == y[accepted])


def detector(kind):
    """The stage that fits Algorithm 1's thresholds on ``kind``'s validation mix and evaluates
    the detector on its test mix: Tables 2 and 3, the k-of-5 sweep, the crop-stage share."""

    def run(cfg, inputs, ctx):
        model, made = inputs["lenet"]["model"], inputs[f"adversarials_{kind}"]
        x_val_clean, x_val_adv = made["validation_x_clean"], made["validation_x_adv"]
        fitted = UncertaintyCropDetector(n_samples=cfg["mc_samples"], votes=cfg["votes"],
                                         crop=cfg["crop"], seed=cfg["seed"])
        fitted.fit(model, x_val_clean, None, x_val_adv)
        x, y = mnist("test", cfg["test_images"])
        x_clean, y_clean = x[:len(x) // 2], y[:len(x) // 2]
        kept = np.asarray(model.predict(x_clean)) == y_clean     # misclassified clean left out
        x_mix = np.concatenate([x_clean[kept], made["x_adv"]])
        y_mix = np.concatenate([y_clean[kept], made["y_adv"]])
        is_adversarial = np.arange(len(y_mix)) >= int(kept.sum())
        decision = fitted.decide(x_mix)
        sweep = {}
        for votes in range(1, 6):
            labels = np.asarray(decision.labels(votes))
            sweep[str(votes)] = dict(outcome_counts(is_adversarial, labels == -1),
                                     clean_flagged_accuracy=clean_flagged_accuracy(
                                         labels, y_mix, labels == -1))
        stage, label = np.asarray(decision.stage), np.asarray(decision.label)
        uncertainty = np.asarray(decision.uncertainty)
        return {"low": float(fitted.low), "high": float(fitted.high),
                "table2": sweep[str(cfg["votes"])], "sweep": sweep,
                "crop_share": mean(stage == 1),
                "crop_share_clean": mean(stage[~is_adversarial] == 1),
                "crop_share_adversarial": mean(stage[is_adversarial] == 1),
                "roc_auc": float(roc_auc_score(is_adversarial, uncertainty)),
                "clean_dropped": int(np.sum(~kept)),
                "uncertainty": uncertainty.astype(np.float32), "is_adversarial": is_adversarial,
                "label": label, "y": y_mix,
                "x_examples": example_images(x_mix, is_adversarial, label == -1)}

    run.__name__ = f"detector_{kind}"
    return run


def example_images(x, is_adversarial, flagged, per_outcome=4):
    """Up to ``per_outcome`` images of each outcome, TP, FP, TN, FN in that order (rows of
    zeros where an outcome has fewer): (4 * per_outcome, 1, 28, 28)."""
    rows = []
    for mask in (is_adversarial & flagged, ~is_adversarial & flagged,
                 ~is_adversarial & ~flagged, is_adversarial & ~flagged):
        chosen = x[np.flatnonzero(mask)[:per_outcome]]
        padding = np.zeros((per_outcome - len(chosen),) + x.shape[1:], x.dtype)
        rows.append(np.concatenate([chosen, padding]))
    return np.concatenate(rows)
