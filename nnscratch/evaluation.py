"""One evaluation loop for every attack: run it over a set of images in batches, keep what it
made and what the model says of it, and report the measures a reader compares.

::

    outcome = evaluate_attack(model, attack, x, y, batch=500)
    outcome.x_adv, outcome.success, outcome.clean, outcome.adversarial, outcome.seconds
    outcome.report()        # clean accuracy, accuracy under attack, success rate, mean norms

The command line (``nnscratch attack``), the demo, the benchmarks and the studies all call
it, as RobustBench's ``benchmark`` serves every model it ranks (Croce et al. 2021). ``model``
is anything with the model interface (a defended model included) and ``attack`` anything with
the attack contract (``generate(model, x, y, target) -> AttackResult``). Everything it keeps
is a host (NumPy) array, so an evaluation on the GPU leaves nothing on the device.
"""

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from nnscratch import metrics
from nnscratch.backend import to_numpy
from nnscratch.checks import check_integer

BATCH = 500      # images per generate call: LeNet's input gradients of 500 images need ~50 MB


@dataclass
class Evaluation:
    """What ``evaluate_attack`` measured on N images (host arrays).

    x_adv: (N, C, H, W)    the attack's images
    y: (N,)                the true labels; target (N,) or None, the attack's targets
    success: (N,) bool     the attack's own verdict (``AttackResult.success``)
    clean, adversarial: (N,) int64: the model's predictions on x and on x_adv
    norms: {"l0", "l0_pixels", "l1", "l2", "linf"}: each (N,); queries (N,)
    seconds: the wall time of the whole loop
    """

    x_adv: np.ndarray
    y: np.ndarray
    target: np.ndarray
    success: np.ndarray
    clean: np.ndarray
    adversarial: np.ndarray
    norms: dict
    queries: np.ndarray
    seconds: float

    @property
    def robust(self):
        """(N,) bool: images the model still classifies correctly after the attack."""
        return self.adversarial == self.y

    def report(self, pass_scores=None):
        """``metrics.attack_report``'s dict (clean accuracy, accuracy under attack, success rate,
        mean L0/L2/Linf over the successful images, and mean PASS when ``pass_scores`` (N,) are
        given) with the mean queries and the seconds."""
        norms = {key: self.norms[key] for key in ("l0", "l2", "linf")}
        report = metrics.attack_report(self.y, self.clean, self.adversarial, self.success,
                                       norms, pass_scores)
        report.update(mean_queries=float(self.queries.mean()), seconds=self.seconds)
        return report


def evaluate_attack(model, attack, x, y, target=None, batch=BATCH, progress=False):
    """Run ``attack`` on images x (N, C, H, W) with labels y (N,) (and targets (N,) for a
    targeted attack), ``batch`` images per ``generate`` call, under a tqdm bar when
    ``progress`` is True (None: only on a terminal). Returns an ``Evaluation``.

    The images are attacked in order, so a seeded attack gives the same images for the same
    ``batch``; another batch size gives other random starts (the seed is drawn per call)."""
    batch = check_integer(batch, "batch")
    if len(x) == 0:
        raise ValueError("evaluate_attack: no images to attack (x is empty)")
    began = time.perf_counter()
    parts = {"x_adv": [], "success": [], "queries": [], "clean": [], "adversarial": []}
    norms = {}
    for start in tqdm(range(0, len(x), batch), desc=type(attack).__name__, unit="batch",
                      disable=None if progress is None else not progress):
        xb, yb = x[start:start + batch], y[start:start + batch]
        tb = None if target is None else target[start:start + batch]
        result = attack.generate(model, xb, yb, tb)
        parts["x_adv"].append(to_numpy(result.x_adv))
        parts["success"].append(to_numpy(result.success))
        parts["queries"].append(to_numpy(result.queries))
        parts["clean"].append(to_numpy(model.predict(xb)))
        parts["adversarial"].append(to_numpy(model.predict(result.x_adv)))
        for key, values in result.norms.items():
            norms.setdefault(key, []).append(to_numpy(values))
    joined = {key: np.concatenate(values) for key, values in parts.items()}
    return Evaluation(y=to_numpy(y), target=None if target is None else to_numpy(target),
                      norms={key: np.concatenate(values) for key, values in norms.items()},
                      seconds=time.perf_counter() - began, **joined)
