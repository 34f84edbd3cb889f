"""Beyond Harms et al.: their defences against an attacker who knows them.

The report scores the ensembles only on adversarials made on another model (the original, or
one member), and leaves open which model Table 4's adversarials were made on. Here each defence
is also attacked white-box: FGSM, BIM and PGD (Madry et al. 2018: ``pgd_steps`` steps of
``pgd_step`` in the L-inf ball of ``pgd_eps``, from a random start) made on the whole
noise-bagging ensemble through its mean-softmax logits (``BaggingNoiseEnsemble``'s exact
gradient), and on each retrained model; beside them the same defences on FGSM and BIM made on
the original model (transferred), on the same first ``adaptive_images`` test images.
"""

from nnscratch import metrics
from nnscratch.attacks import PGD
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy
from nnscratch.experiments.harms.stages import attack_of, rebuilt, test_set

DEFENCES = ("original", "ensemble", "retrained_fgsm", "retrained_bim")


def adaptive(dataset, cfg, inputs, ctx):
    """{defence: {"clean", "white-box fgsm|bim|pgd", "transferred fgsm|bim": accuracy}}."""
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
            outcome = evaluate_attack(model, attack, x, y)
            row[f"white-box {attack_name}"] = metrics.accuracy(y, outcome.adversarial)
        for attack_name in ("fgsm", "bim"):
            row[f"transferred {attack_name}"] = accuracy(model, made[attack_name][:count], y)
        out[name] = row
        ctx.log(f"{name}: {row}")
    return {"images": len(y), "defences": out}
