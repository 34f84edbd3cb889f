"""Beyond Günther et al.: their defences against an attacker who knows them.

The paper evaluates preprocessing, crops and OpenMax only on adversarials made against the
bare network ("transfer"). Here the same attacks are also made *through* the defence
("adaptive"), with the gradients of the defended model's interface: exact through the five
crops and the blur, the identity (BPDA) through rounding. Fooling images are climbed on
OpenMax's own probabilities (``OpenMax.as_model()``, an exact gradient through its Weibull
recalibration).

Per attack and defence, on the first ``adaptive_images`` test images the base network
classifies correctly: the share made against the bare network that stays misclassified
through the defence, and the share made against the defence that it misclassifies.
"""

import numpy as np

from nnscratch.attacks import FGV, PGD, FoolingImages
from nnscratch.defenses import Blur, Compose, FiveCropAverage, OpenMax, Preprocessed, Round
from nnscratch.evaluation import evaluate_attack
from nnscratch.experiments.common import mean, mnist


def defended_models(model, seed):
    """The two defences attacked: the five-crop average and blur + rounding."""
    return {"crops": FiveCropAverage(model),
            "blur": Preprocessed(model, Compose(Blur(), Round()), seed=seed)}


def attacks(cfg):
    """{name: a function making the attack}: minimal FGV, and PGD at each configured eps."""
    made = {"minimal FGV": lambda: FGV(minimal=True)}
    for eps in cfg["pgd_eps"]:
        made[f"PGD eps {eps:g}"] = lambda eps=eps: PGD(eps, step=cfg["pgd_step"],
                                                       steps=cfg["pgd_steps"], seed=cfg["seed"])
    return made


def adaptive(cfg, inputs, ctx):
    """The adaptive table: per attack, success on the bare network, and per defence the
    transfer and adaptive success; then fooling images against OpenMax. Each attack runs on
    all the images in one ``generate`` call (PGD's random starts are drawn per call)."""
    model = inputs["base"]["model"]
    x, y = mnist("test", cfg["test_images"])
    correct = np.flatnonzero(np.asarray(model.predict(x)) == y)[:cfg["adaptive_images"]]
    x, y = x[correct], y[correct]
    defences = defended_models(model, cfg["seed"])
    rows = {}
    for name, make in attacks(cfg).items():
        on_bare = evaluate_attack(model, make(), x, y, batch=len(x))
        success = on_bare.success.astype(bool)
        row = {"bare": mean(success)}
        for defence_name, defence in defences.items():
            survives = success & (np.asarray(defence.predict(on_bare.x_adv)) != y)
            through = evaluate_attack(defence, make(), x, y, batch=len(x))
            row[defence_name] = {"transfer": mean(survives), "adaptive": mean(through.success)}
        rows[name] = row
        ctx.log(f"{name}: {row}")
    return {"images": len(y), "attacks": rows, "openmax": fooling_against_openmax(cfg, model)}


def fooling_against_openmax(cfg, model):
    """Fooling images at each confidence, climbed on OpenMax's probability of the target (the
    K + 1 recalibrated probabilities, unknown included): the share OpenMax accepts as the target,
    to set beside Table 3's "same target" for fooling images made on the bare network."""
    x_train, y_train = mnist("train-rest", cfg["openmax_train_images"])
    defence = OpenMax(layer=cfg["openmax_layers"][0], tailsize=cfg["openmax_tailsize"],
                      alpha=cfg["openmax_alpha"]).fit(model, x_train, y_train)
    targets = np.repeat(np.arange(10), cfg["adaptive_fooling_per_digit"])
    start = np.zeros((len(targets), 1, 28, 28), np.float32)
    out = {}
    for confidence in cfg["fooling_confidences"]:
        result = FoolingImages(confidence, steps=cfg["fooling_steps"],
                               step_size=cfg["fooling_step_size"], seed=cfg["seed"]).generate(
            defence.as_model(), start, target=targets)
        predicted = np.asarray(defence.predict(result.x_adv))
        out[f"f{round(100 * confidence)}"] = {"reached": mean(result.success),
                                             "accepted_as_target": mean(predicted == targets),
                                             "unknown": mean(predicted == -1)}
    return out
