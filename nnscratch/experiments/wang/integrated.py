"""The integrated model of the Wang & Zhang reproduction (Tables VI and VII): six networks read
the same image and an MLP decides from their twelve logits (``nnscratch.defenses.IntegratedModel``
holds the model; this stage trains its MLP both ways and scores it under Table VII's protocol).
"""

import numpy as np

from nnscratch.defenses import combiner
from nnscratch.experiments.wang.stages import defended, fgsm, scores, test_pairs, training_pairs
from nnscratch.optim import Adam
from nnscratch.training import fit

# Table VI: {no preprocessing, blur, median} x {FGSM-trained (models 1-3), black-box (4-6)}
MEMBERS = ("fgsm_none", "fgsm_blur", "fgsm_median",
           "substitute_none", "substitute_blur", "substitute_median")
ROWS = ("none", "blur", "median")           # Table VII's test-time preprocessing


def member_logits(cfg, inputs, images, preprocessing=None):
    """h (N, 12): the six members' logits side by side. images: one array for all members, or
    a list of one per member; each member reads its images after ``preprocessing`` (a row of
    Table VII), or after its own preprocessing when None (how the members were trained)."""
    parts = []
    for m, name in enumerate(MEMBERS):
        x = images[m] if isinstance(images, list) else images
        row = inputs[name]["preprocessing"] if preprocessing is None else preprocessing
        parts.append(np.asarray(defended(cfg, inputs[name]["model"], row).logits(x)))
    return np.concatenate(parts, axis=1)


def member_fgsm(cfg, inputs, x):
    """FGSM made against each member separately (its bare network): a list of six arrays."""
    return [np.asarray(fgsm(cfg).generate(inputs[name]["model"], x).x_adv) for name in MEMBERS]


def train_combiner(cfg, h, y, activation, checkpoint_dir):
    """The MLP 12 -> hidden -> 2 on the members' logits h (N, 12), trained with Adam (the
    code's rate 1e-3, batch 128, 15 epochs)."""
    model = combiner(h.shape[1], 2, hidden=tuple(cfg["combiner_hidden"]),
                     activation=activation, seed=cfg["seed"])
    fit(model, Adam(model, lr=cfg["combiner_lr"]), (h.astype(np.float32), y),
        cfg["combiner_epochs"], batch_size=cfg["combiner_batch_size"], seed=cfg["seed"],
        checkpoint_dir=checkpoint_dir, resume=True, progress=False)
    return model


def integrated(cfg, inputs, ctx):
    """The integrated model both ways, and Table VII for each. The paper: an MLP with ReLUs on
    the logits of clean training images. The code: the same sizes without activations, on the
    logits of FGSM-attacked training images (FGSM against each member). Either way each member
    reads the training images after its own preprocessing.

    Table VII's protocol: each member gets the attacked image (FGSM made against that member;
    the spatial set as it is), then the row's preprocessing; the MLP reads the twelve logits."""
    x, y = training_pairs(cfg)
    combiners = {
        "paper": train_combiner(cfg, member_logits(cfg, inputs, x), y, True,
                                ctx.checkpoint_dir / "paper"),
        "code": train_combiner(cfg, member_logits(cfg, inputs, member_fgsm(cfg, inputs, x)), y,
                               False, ctx.checkpoint_dir / "code")}
    x_test, y_test = test_pairs(cfg)
    attacked = {"clean": x_test, "spatial": inputs["spatial"]["x"],
                "spatial_as_run": inputs["spatial_as_run"]["x"],
                "fgsm": member_fgsm(cfg, inputs, x_test)}
    table = {}
    for row in ROWS:
        for attack, images in attacked.items():
            h = member_logits(cfg, inputs, images, row)
            for variant, model in combiners.items():
                predicted = np.asarray(model.predict(h.astype(np.float32)))
                table[f"{variant}/{row}/{attack}"] = scores(y_test, predicted)
    return {"paper_combiner": combiners["paper"], "code_combiner": combiners["code"],
            "table": table}
