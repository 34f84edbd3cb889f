"""Beyond the paper: the Wang & Zhang defences against attacks that know them.

The paper makes every attack on the network before its preprocessing, and the integrated
model's FGSM on each member alone; a defence that only meets attacks blind to it proves little.
On the first ``adaptive_images`` test images, each defence against, side by side:

- the blur and the median filter: FGSM made before the preprocessing (the paper), FGSM and PGD
  made through it (``Preprocessed``: the blur's exact derivative; the median's, which routes
  each output's gradient to the pixel the median picked), and PGD through it with BPDA (the
  identity standing in for the preprocessing's derivative);
- the FGSM-trained network: FGSM (what it was trained against) and PGD (Madry et al.;
  adversarial training against one-step FGSM is known to fall to iterative attacks);
- the integrated model (the paper's MLP, each member behind its own preprocessing): FGSM made
  against each member alone (the paper's protocol), and FGSM and PGD made through the whole
  ``IntegratedModel``, whose gradient flows through all six networks and their preprocessing.

PGD: L-inf, eps ``fgsm_eps`` (0.3, as FGSM), ``pgd_steps`` steps of ``pgd_step``, random
start seeded with the run's seed. Each figure is the defence's accuracy and the F1 of the 7s
on the attacked images.
"""

import numpy as np

from nnscratch.attacks import PGD
from nnscratch.defenses import BPDA, IntegratedModel, Preprocessed
from nnscratch.experiments.wang.integrated import MEMBERS, member_fgsm, member_logits
from nnscratch.experiments.wang.stages import defended, fgsm, scores, test_pairs, transform


def pgd(cfg):
    return PGD(eps=cfg["fgsm_eps"], step=cfg["pgd_step"], steps=cfg["pgd_steps"],
               seed=cfg["seed"])


def attacked(model, attack, x):
    return np.asarray(attack.generate(model, x).x_adv)


def preprocessing_rows(cfg, network, preprocessing, x, y):
    """The network behind its preprocessing, against attacks before, through and by BPDA."""
    t = transform(cfg, preprocessing)
    deployed, bpda = Preprocessed(network, t), Preprocessed(network, BPDA(t))
    images = {"FGSM before the preprocessing (the paper)": attacked(network, fgsm(cfg), x),
              "FGSM through it (exact gradient)": attacked(deployed, fgsm(cfg), x),
              "PGD through it (exact gradient)": attacked(deployed, pgd(cfg), x),
              "PGD through it (BPDA)": attacked(bpda, pgd(cfg), x)}
    return {name: scores(y, np.asarray(deployed.predict(x_adv))) for name, x_adv in images.items()}


def adaptive(cfg, inputs, ctx):
    x, y = test_pairs(cfg)
    x, y = x[:cfg["adaptive_images"]], y[:cfg["adaptive_images"]]
    out = {"blur": preprocessing_rows(cfg, inputs["plain_blur"]["model"], "blur", x, y),
           "median": preprocessing_rows(cfg, inputs["plain_median"]["model"], "median", x, y)}
    trained = inputs["fgsm_none"]["model"]
    out["fgsm_trained"] = {name: scores(y, np.asarray(trained.predict(attacked(trained, a, x))))
                           for name, a in (("FGSM (the paper)", fgsm(cfg)), ("PGD", pgd(cfg)))}
    combiner = inputs["integrated"]["paper_combiner"]
    whole = IntegratedModel([defended(cfg, inputs[name]["model"], inputs[name]["preprocessing"])
                             for name in MEMBERS], combiner)
    per_member = member_logits(cfg, inputs, member_fgsm(cfg, inputs, x))
    out["integrated"] = {
        "FGSM against each member (the paper)":
            scores(y, np.asarray(combiner.predict(per_member.astype(np.float32)))),
        "FGSM through the whole model": scores(y, np.asarray(
            whole.predict(attacked(whole, fgsm(cfg), x)))),
        "PGD through the whole model": scores(y, np.asarray(
            whole.predict(attacked(whole, pgd(cfg), x))))}
    return out
