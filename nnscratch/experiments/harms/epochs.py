"""FGSM retraining epoch by epoch: what each epoch of Harms et al.'s retraining resists.

The report regenerates the training set's adversarials "after each epoch" on the model of that
moment and gives one figure (Table 4) without the number of epochs. Here the FGSM retraining
of the ``retrained_fgsm`` stage is replayed one epoch at a time (the same seed and steps, so
the last epoch's model is that stage's), and after each epoch the model is scored on the first
``adaptive_images`` test images: clean, on FGSM made on the original model (what the first
epoch trained against), and on FGSM made on itself (white-box).
"""

from nnscratch import metrics
from nnscratch.defenses import AdversarialRetraining
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import accuracy, clone
from nnscratch.experiments.harms.stages import attack_of, recipe, test_set, training_set
from nnscratch.training import fit_recipe


def retraining_epochs(dataset, cfg, inputs, ctx):
    """{"epoch": [1..], "clean", "from_original", "white_box": [accuracy after each]}."""
    x, y = test_set(dataset, cfg)
    x, y = x[:cfg["adaptive_images"]], y[:cfg["adaptive_images"]]
    made = inputs["attacks_original"]["fgsm"][:len(y)]
    model = clone(inputs["original"]["model"])
    objective = AdversarialRetraining(attack_of("fgsm", cfg), alpha=cfg["retrain_alpha"])
    train = training_set(dataset, cfg, cfg["retrain_images"])
    out = {"epoch": [], "clean": [], "from_original": [], "white_box": []}
    for epoch in range(1, cfg["retrain_epochs"] + 1):
        fit_recipe(model, recipe(cfg, epoch), train, seed=cfg["seed"], objective=objective,
                   checkpoint_dir=ctx.checkpoint_dir, resume=True)
        outcome = evaluate_attack(model, attack_of("fgsm", cfg), x, y)
        out["epoch"].append(epoch)
        out["clean"].append(accuracy(model, x, y))
        out["from_original"].append(accuracy(model, made, y))
        out["white_box"].append(metrics.accuracy(y, outcome.adversarial))
        ctx.log(f"epoch {epoch}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in out.items()
                                               if k != "epoch"))
    return out
