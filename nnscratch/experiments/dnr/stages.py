"""The stages of the Deep Neural Rejection study (Sotgiu et al. 2019, the defence Thanthulage's
report was building towards; settings from the paper and the authors' tutorial): ``dnr_cnn`` on
one half of the training images, the reject options fitted on the other, their clean behaviour
and their security evaluation curves. ``__init__.py`` declares the stages, their settings and
their order; the attacks that need a fitted defence are in ``adaptive.py``.

Choices left open, and ours:
- Data: the network trains on the first half of the training images (less the validation
  split); DNR, NR and OpenMax are fitted on ``dnr_images`` images of the second half (the
  authors' tutorial: 5,000); reject thresholds are set on ``validation_images`` clean images of
  the validation split for ``reject_rate`` (10%, the paper's); curves are measured on test
  images. The network: ``zoo.RECIPES["dnr_cnn"]`` (the report's SGD 0.1, momentum 0.9, batch
  128, dropout 0.5, with a warm-up and a cosine decay) for ``epochs``.
- Layer SVMs: for each tapped layer, 3-fold cross-validation on ``selection_images`` of the DNR
  training images over C in {1, 10} and gamma in {g / 10, g, 10 g}, g the authors' value for
  that layer; NR takes the setting chosen for its layer (relu_6). The combiner keeps the
  authors' C = 0.1, gamma = 1.
- OpenMax (Günther et al.'s, on relu_6, the last hidden layer; tailsize 20 since it is fitted on
  a few hundred images a class) rejects where P(unknown) passes a threshold set, like the
  others', for 10% of clean validation images (``AtRejectRate``).
- Attacks for the curves (FGSM and PGD, L-inf and L2) are made against the undefended network
  and then shown to every reject option: the same adversarials for all. The attack that knows
  the defence is in ``adaptive.py``.
- Accuracy under attack, as the paper counts it: at eps 0 the plain accuracy (a rejected clean
  image is an error); for eps > 0 a rejected adversarial is a correct decision.
"""

import time

import numpy as np

from nnscratch import zoo
from nnscratch.attacks import FGSM, PGD
from nnscratch.defenses import OpenMax
from nnscratch.defenses.dnr import DeepNeuralRejection, NeuralRejection
from nnscratch.defenses.rejection import AtRejectRate, SoftmaxThreshold
from nnscratch.defenses.svm import cross_validate_svm
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy, mean, mnist, train

OPTIONS = ("cnn", "softmax", "nr", "dnr", "openmax")
CURVES = {"fgsm_linf": "fgsm_eps", "pgd_linf": "pgd_linf_eps", "pgd_l2": "pgd_l2_eps"}


def halves(train_images):
    """(network's training images, the other half): the halves of "train-rest"."""
    x, y = mnist("train-rest", train_images)
    middle = len(y) // 2
    return (x[:middle], y[:middle]), (x[middle:], y[middle:])


def dnr_training(cfg, count):
    """The first ``count`` images of the half the network did not see."""
    x, y = halves(cfg["train_images"])[1]
    return x[:count], y[:count]


def network(cfg, inputs, ctx):
    """dnr_cnn trained on the first half of the training images."""
    model = zoo.build("dnr_cnn", seed=cfg["seed"])
    history = train(model, "dnr_cnn", halves(cfg["train_images"])[0], ctx, cfg["epochs"],
                    cfg["seed"])
    x, y = mnist("test", cfg["test_images"])
    return {"model": model, "test_accuracy": accuracy(model, x, y),
            "training_seconds": float(sum(history["seconds"]))}


def svm_selection(cfg, inputs, ctx):
    """The layer SVMs' (C, gamma), chosen by cross-validation around the authors' values."""
    model = inputs["network"]["model"]
    x, y = dnr_training(cfg, cfg["selection_images"])
    features = model.features(x, list(cfg["dnr_layers"]))
    chosen, tables, scale = [], {}, cfg["svm_gamma_scale"]
    for layer, (c, gamma) in zip(cfg["dnr_layers"], cfg["authors_svms"]):
        grid = [(C, g) for C in cfg["svm_grid_c"] for g in (gamma / scale, gamma, gamma * scale)]
        h = np.asarray(features[layer]).reshape(len(y), -1).astype(np.float64)
        best, scores = cross_validate_svm(h, y, grid, folds=cfg["selection_folds"],
                                          seed=cfg["seed"])
        chosen.append([float(best[0]), float(best[1])])
        tables[layer] = [[C, g, float(scores[(C, g)])] for C, g in grid]
        ctx.log(f"{layer}: C {best[0]:g}, gamma {best[1]:g} "
                f"(cross-validated accuracy {scores[best]:.4f})")
    return {"layer_svms": chosen, "cross_validation": tables}


def svm_options(cfg, layer_svms):
    """NR (on the last of ``dnr_layers``) and DNR, not fitted, with the layer SVMs' chosen
    (C, gamma) and the combiner's ``dnr_combiner``."""
    rate, layers = cfg["reject_rate"], tuple(cfg["dnr_layers"])
    return {"nr": NeuralRejection(layers[-1], *layer_svms[-1], reject_rate=rate),
            "dnr": DeepNeuralRejection(layers, tuple(map(tuple, layer_svms)),
                                       combiner=tuple(cfg["dnr_combiner"]), folds=cfg["folds"],
                                       reject_rate=rate, seed=cfg["seed"])}


def defences(cfg, inputs, ctx):
    """NR and DNR fitted once (the 5-fold out-of-fold fit is the study's costliest step on
    the CPU); their SVMs and thresholds kept as arrays, "nr_*" and "dnr_*", for later stages."""
    model = inputs["network"]["model"]
    x, y = dnr_training(cfg, cfg["dnr_images"])
    x_val, _ = mnist("validation", cfg["validation_images"])
    out, seconds = {}, {}
    for name, option in svm_options(cfg, inputs["svm_selection"]["layer_svms"]).items():
        start = time.perf_counter()
        option.fit(model, x, y, x_val=x_val)
        seconds[name] = time.perf_counter() - start
        out.update({f"{name}_{key}": value for key, value in option.state().items()})
        ctx.log(f"{name}: fitted in {seconds[name]:.0f} s, theta {option.theta:.4g}")
    out["fit_seconds"] = seconds
    return out


def fitted_svm_options(cfg, inputs):
    """NR and DNR as the ``defences`` stage fitted them."""
    model, state = inputs["network"]["model"], inputs["defences"]
    options = svm_options(cfg, inputs["svm_selection"]["layer_svms"])
    for name, option in options.items():
        prefix = f"{name}_"
        option.load_state(model, {key[len(prefix):]: value for key, value in state.items()
                                  if key.startswith(prefix)})
    return options


def reject_options(cfg, inputs):
    """Every reject option of the comparison, fitted, in OPTIONS order (the CNN: None)."""
    model = inputs["network"]["model"]
    x, y = dnr_training(cfg, cfg["dnr_images"])
    x_val, _ = mnist("validation", cfg["validation_images"])
    rate = cfg["reject_rate"]
    options = {"softmax": SoftmaxThreshold(rate),
               "openmax": AtRejectRate(OpenMax(layer=cfg["openmax_layer"],
                                               tailsize=cfg["openmax_tailsize"]), rate)}
    for option in options.values():
        option.fit(model, x, y, x_val=x_val)
    svms = fitted_svm_options(cfg, inputs)
    return {name: None if name == "cnn" else svms.get(name, options.get(name))
            for name in OPTIONS}


def labels_of(option, model, x):
    """The decisions (N,) of a reject option (-1: rejected); the CNN never rejects."""
    return np.asarray(model.predict(x) if option is None else option.predict(x))


def security_accuracy(labels, y, eps):
    """Accuracy as the paper counts it (module docstring)."""
    return mean(labels == y) if eps == 0 else mean((labels == y) | (labels == -1))


def attacks(cfg, inputs, ctx):
    """FGSM (L-inf) and PGD (L-inf, L2) against the network at every configured size, on the
    first ``attack_images`` test images, all in one ``generate`` call (PGD's random starts are
    drawn per call): x_{curve}_{i} for the i-th size."""
    model = inputs["network"]["model"]
    x, y = mnist("test", cfg["attack_images"])
    out = {}
    for curve, key in CURVES.items():
        for i, eps in enumerate(cfg[key]):
            if curve == "fgsm_linf":
                attack = FGSM(eps)
            else:
                norm = curve.split("_")[1]
                attack = PGD(eps, steps=cfg["pgd_steps"], norm=norm, seed=cfg["seed"])
            outcome = evaluate_attack(model, attack, x, y, batch=len(x))
            out[f"x_{curve}_{i}"] = outcome.x_adv
            ctx.log(f"{curve} eps {eps:g}: success {mean(outcome.success):.3f}")
    return out


def evaluation(cfg, inputs, ctx):
    """Every reject option on clean test images (rejection rates, accuracy on the accepted,
    accuracy-rejection curves) and on the attacks' adversarials (security curves)."""
    model = inputs["network"]["model"]
    options = reject_options(cfg, inputs)
    x, y = mnist("test", cfg["test_images"])
    x_attacked, y_attacked = mnist("test", cfg["attack_images"])
    out = {"clean": {}, "curves": {}}
    for name, option in options.items():
        labels = labels_of(option, model, x)
        accepted = labels != -1
        out["clean"][name] = {"rejected": mean(~accepted),
                              "accuracy_accepted": mean(labels[accepted] == y[accepted]),
                              "accuracy": mean(labels == y)}
        if option is not None:
            out[f"scores_clean_{name}"] = np.asarray(option.score(x), dtype=np.float64)
        out["curves"][name] = {}
        for curve, key in CURVES.items():
            points = []
            for i, eps in enumerate(cfg[key]):
                adversarial = inputs["attacks"][f"x_{curve}_{i}"]
                labels = labels_of(option, model, adversarial)
                points.append({"eps": eps, "accuracy": security_accuracy(labels, y_attacked, eps),
                               "rejected": mean(labels == -1)})
            out["curves"][name][curve] = points
        ctx.log(f"{name}: {out['clean'][name]}")
    attacked = inputs["attacks"][f"x_pgd_l2_{cfg['histogram_index']}"]
    out["thresholds"] = {}
    for name in OPTIONS[1:]:
        option = options[name]
        out[f"scores_pgd_{name}"] = np.asarray(option.score(attacked), dtype=np.float64)
        out[f"classes_clean_{name}"] = classes_of(option, model, x)
        out[f"classes_pgd_{name}"] = classes_of(option, model, attacked)
        out["thresholds"][name] = (-option.theta if hasattr(option, "theta")
                                   else option.threshold)
    out["y_test"], out["y_attacked"] = y, y_attacked
    out["labels_pgd_dnr"] = labels_of(options["dnr"], model, attacked)
    return out


def classes_of(option, model, x):
    """The class (N,) a reject option gives where it accepts: the SVMs' argmax for DNR and NR,
    the network's class for the others."""
    scores = getattr(option, "scores", None)
    return np.asarray((scores(x) if scores else model.logits(x))).argmax(axis=1)
