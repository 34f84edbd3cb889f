"""FGSM and BIM over a small range of eps, beside the study's one eps (the report gives none).

At each eps of ``sweep_eps`` FGSM and BIM are made on the original model (BIM with its step
scaled with eps, ``bim_step / bim_eps`` of it, for ``bim_steps`` steps, as in the study's own
setting) and scored on the original (white-box), on the ensemble of all members and on the two
retrained models (transferred, as the report scores its ensembles); the retrained models are
also attacked white-box at each eps. All on the first ``sweep_images`` test images.
"""

from nnscratch import metrics
from nnscratch.attacks import BIM, FGSM
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy
from nnscratch.experiments.harms.stages import rebuilt, test_set

ROWS = ("original", "ensemble", "retrained_fgsm", "retrained_bim",
        "retrained_fgsm white-box", "retrained_bim white-box")


def attack_at(name, eps, cfg):
    if name == "fgsm":
        return FGSM(eps=eps)
    return BIM(eps, step=eps * cfg["bim_step"] / cfg["bim_eps"], steps=cfg["bim_steps"])


def sweep(dataset, cfg, inputs, ctx):
    """{"eps": [...], "images": n, "fgsm"|"bim": {row: [accuracy at each eps]}}, the rows
    ``ROWS``: a model's name alone is its accuracy on the adversarials made on the original."""
    x, y = test_set(dataset, cfg)
    x, y = x[:cfg["sweep_images"]], y[:cfg["sweep_images"]]
    models = {"original": inputs["original"]["model"], "ensemble": rebuilt(inputs["ensemble"]),
              "retrained_fgsm": inputs["retrained_fgsm"]["model"],
              "retrained_bim": inputs["retrained_bim"]["model"]}
    out = {"eps": list(cfg["sweep_eps"]), "images": len(y)}
    for name in ("fgsm", "bim"):
        rows = {row: [] for row in ROWS}
        for eps in cfg["sweep_eps"]:
            made = evaluate_attack(models["original"], attack_at(name, eps, cfg), x, y).x_adv
            for model_name, model in models.items():
                rows[model_name].append(accuracy(model, made, y))
            for model_name in ("retrained_fgsm", "retrained_bim"):
                outcome = evaluate_attack(models[model_name], attack_at(name, eps, cfg), x, y)
                rows[f"{model_name} white-box"].append(metrics.accuracy(y, outcome.adversarial))
            ctx.log(f"{name} eps {eps:g}: " + ", ".join(
                f"{row} {values[-1]:.3f}" for row, values in rows.items()))
        out[name] = rows
    return out
