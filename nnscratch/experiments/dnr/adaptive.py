"""The DNR study's attacks that need a fitted defence: Sotgiu et al.'s defence-aware attack and
the one-pixel attack the report planned.

- Defence-aware: ``RejectAwarePGD`` on DNR's and NR's model view (``as_model()``: logits
  [s_1 .. s_K, theta]), which lowers s_y - max_{l != y} s_l inside the L2 ball of each
  ``aware_eps`` while keeping the point out of the reject region; the authors' settings
  (normalised gradient, step ``aware_step`` doubled up to ``line_search`` times,
  ``aware_steps`` steps) and their second start: each image also starts from the DNR
  training image (the attacker knows the defence's training data) of lowest objective,
  projected into its ball, keeping the run that ends lower. Beside it, on the same images,
  PGD L2 (``pgd_steps``) made against the network alone and shown to each option: the
  attack that does not know the defence, which the defence-aware one should beat. Accuracy
  as the paper counts it (a rejected adversarial is a correct decision). Neither goes
  through ``evaluate_attack``: what is measured is the reject option's decision
  (``option.predict``, -1 rejected), not the model's class, and one ``generate`` call each
  gives the adversarials.
- One pixel (Su et al.; 1, 3 and 5 pixels) on ``one_pixel_images`` test images the network
  classifies correctly, with a smaller differential evolution than the paper's (population
  ``one_pixel_population``, ``one_pixel_iterations`` generations) to fit 2 cores: against the
  undefended network, the same adversarials shown to DNR (transfer), and against DNR's model
  view directly. On the model view "rejected" is one more class, so that run stops at the
  first candidate DNR rejects or misclassifies; both outcomes are reported.
"""

import numpy as np

from nnscratch.attacks import PGD, OnePixel
from nnscratch.attacks.reject_aware import RejectAwarePGD
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import mean, mnist
from nnscratch.experiments.dnr.stages import dnr_training, fitted_svm_options, security_accuracy


def correct_test_images(model, count):
    """The first ``count`` test images the network classifies correctly."""
    x, y = mnist("test", 4 * count)
    correct = np.flatnonzero(np.asarray(model.predict(x)) == y)[:count]
    return x[correct], y[correct]


def defence_aware(cfg, inputs, ctx):
    """The defence-aware attack against DNR and NR at each L2 budget, beside PGD L2 made
    against the network alone and shown to them ("transfer_*"), on the same images."""
    model = inputs["network"]["model"]
    options = fitted_svm_options(cfg, inputs)
    x, y = mnist("test", cfg["aware_images"])
    starts = dnr_training(cfg, cfg["dnr_images"])[0]
    out = {"dnr": [], "nr": []}
    for eps in cfg["aware_eps"]:
        transferred = x if eps == 0 else PGD(eps, steps=cfg["pgd_steps"], norm="l2",
                                             seed=cfg["seed"]).generate(model, x, y).x_adv
        attack = RejectAwarePGD(eps, steps=cfg["aware_steps"], step=cfg["aware_step"],
                                line_search=cfg["line_search"], starts=starts)
        for name, option in options.items():
            aware = x if eps == 0 else attack.generate(option.as_model(), x, y).x_adv
            labels = np.asarray(option.predict(aware))
            shown = np.asarray(option.predict(transferred))
            out[name].append({"eps": eps, "accuracy": security_accuracy(labels, y, eps),
                              "rejected": mean(labels == -1),
                              "transfer_accuracy": security_accuracy(shown, y, eps),
                              "transfer_rejected": mean(shown == -1)})
            ctx.log(f"{name} eps {eps:g}: {out[name][-1]}")
    return out


def one_pixel(cfg, inputs, ctx):
    """The one-pixel attack against the network and against DNR (module docstring)."""
    model = inputs["network"]["model"]
    dnr = fitted_svm_options(cfg, inputs)["dnr"]
    x, y = correct_test_images(model, cfg["one_pixel_images"])
    accepted = np.asarray(dnr.predict(x)) != -1                  # DNR's verdict on the clean
    out = {"images": len(y), "clean_rejected": mean(~accepted)}
    for pixels in cfg["one_pixel_pixels"]:
        attack = OnePixel(pixels, population=cfg["one_pixel_population"],
                          max_iterations=cfg["one_pixel_iterations"], seed=cfg["seed"])
        on_network = evaluate_attack(model, attack, x, y, batch=len(x))
        transferred = np.asarray(dnr.predict(on_network.x_adv))
        on_dnr = evaluate_attack(dnr.as_model(), attack, x, y, batch=len(x))
        direct = np.asarray(dnr.predict(on_dnr.x_adv))       # its decisions, -1 rejected
        out[f"pixels_{pixels}"] = {
            "network": {"success": mean(on_network.success),
                        "queries": mean(on_network.queries)},
            "transfer": {"success": mean((transferred != y) & (transferred != -1)),
                         "rejected": mean(transferred == -1)},
            "dnr": {"success": mean((direct != y) & (direct != -1)),
                    "rejected": mean(direct == -1),
                    "queries": mean(on_dnr.queries)}}
        ctx.log(f"{pixels} pixels: {out[f'pixels_{pixels}']}")
    return out
