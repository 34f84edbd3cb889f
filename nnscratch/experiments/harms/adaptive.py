"""Beyond Harms et al.: their defences against an attacker who knows them.

The report scores the ensembles only on adversarials made on another model (the original, or
one member), and leaves open which model Table 4's adversarials were made on. Here every
defence is also attacked white-box with PGD (Madry et al. 2018: ``pgd_steps`` steps of
``pgd_step`` in the L-inf ball of ``pgd_eps``, from a random start), the noise-bagging ensemble
through its mean-softmax logits (``BaggingNoiseEnsemble``'s exact gradient), and the ensemble
also with FGSM and BIM made on it (the original's and the retrained models' white-box FGSM and
BIM are in the attacks table and Table 4); beside them the same defences on FGSM and BIM made
on the original model (transferred), all on the first ``adaptive_images`` test images.
"""

from nnscratch import metrics
from nnscratch.attacks import PGD
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy
from nnscratch.experiments.harms.stages import attack_of, rebuilt, test_set

DEFENCES = ("original", "ensemble", "retrained_fgsm", "retrained_bim")


def adaptive(dataset, cfg, inputs, ctx):
    """{defence: {"clean", "white-box pgd" (and for the ensemble "white-box fgsm|bim"),
    "transferred fgsm|bim": accuracy}}."""
    x, y = test_set(dataset, cfg)
    count = cfg["adaptive_images"]
    x, y = x[:count], y[:count]
    made = inputs["attacks_original"]
    models = {"original": inputs["original"]["model"], "ensemble": rebuilt(inputs["ensemble"]),
              "retrained_fgsm": inputs["retrained_fgsm"]["model"],
              "retrained_bim": inputs["retrained_bim"]["model"]}
    attacks = {"fgsm": attack_of("fgsm", cfg), "bim": attack_of("bim", cfg),
               "pgd": PGD(cfg["pgd_eps"], step=cfg["pgd_step"], steps=cfg["pgd_steps"],
                          seed=cfg["seed"])}
    out = {}
    for name in DEFENCES:
        model = models[name]
        row = {"clean": accuracy(model, x, y)}
        for attack_name, attack in attacks.items():
            if attack_name != "pgd" and name != "ensemble":
                continue
            outcome = evaluate_attack(model, attack, x, y)
            row[f"white-box {attack_name}"] = metrics.accuracy(y, outcome.adversarial)
        for attack_name in ("fgsm", "bim"):
            row[f"transferred {attack_name}"] = accuracy(model, made[attack_name][:count], y)
        out[name] = row
        ctx.log(f"{name}: {row}")
    return {"images": len(y), "defences": out}
