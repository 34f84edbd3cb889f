"""Papernot et al.'s black-box attack ("Practical Black-Box Attacks against Machine Learning",
AsiaCCS 2017): train a substitute on the labels that the target (the "oracle") gives to
synthetic inputs, then make a white-box attack on the substitute and hand its images to the
target, hoping they transfer.

    record = train_substitute(oracle, substitute, seed_images)     trains substitute in place
    result = TransferAttack(substitute, FGSM(0.3)).generate(oracle, x, y)

Substitute training, the paper's Algorithm 1 with the choices of cleverhans' black-box tutorial
(``mnist_blackbox.py``, whose settings are the defaults here: 6 rounds of 10 epochs, lambda
0.1, Adam 0.001, batch 128, 150 seed images)::

    S_0 = the seed images                                                   (n, C, H, W)
    for rho = 0 .. rounds - 1:
        label the points of S_rho not yet labelled: O(x) = argmax of the oracle's logits
        train F on (S_rho, O(S_rho)) for ``epochs`` epochs
        unless rho is the last round:
            S_{rho+1} = S_rho  U  {x + lambda_rho * sign(dF_{O(x)}(x) / dx) : x in S_rho}

so |S_rho| = n 2^rho, and the last round trains on n 2^(rounds - 1) points (4,800 for 150
seeds and 6 rounds). F_k is the substitute's logit of class k, as in cleverhans
(``jacobian_graph`` on ``get_logits``); the paper writes the Jacobian of F's output, and the
tutorials of 2017, whose substitute ended in a softmax, differentiated the probabilities.
lambda_rho = -lambda for rho < ``flip_round``, +lambda after: cleverhans' "lmbda_coef = 2 *
int(int(rho / 3) != 0) - 1" is flip_round 3 (the sign flips once, it is not periodic);
flip_round 0 gives the paper's constant +lambda. Neither the paper nor cleverhans clips the
new points to [0, 1], nor do we: they may lie up to (rounds - 1) * lambda outside it (models
take any finite input). F keeps its weights from round to round and gets a fresh Adam each
round, as cleverhans' ``train(..., init_all=False)`` does.
"""

import numpy as np

from nnscratch.attacks.base import Attack
from nnscratch.backend import get_array_module, to_device, to_numpy
from nnscratch.checks import check_integer, check_real, check_seed
from nnscratch.model import Model
from nnscratch.model.interface import check_unit_images
from nnscratch.optim import Adam
from nnscratch.training import check_data, epoch_seed, fit


def on_device_of(model, x):
    """x moved to where ``model`` computes."""
    return to_device(x, model.device or "cpu")


def jacobian_augmentation(substitute, x, labels, lam):
    """x + lam * sign(dz_{labels}(x) / dx): each image moved along the sign of the row of the
    substitute's Jacobian (of its logits z) that its label picks (Papernot et al. 2017).

    x: (n, C, H, W); labels: (n,) integers on x's device; lam: a signed step. Returns (n, C, H,
    W), x's dtype, not clipped. One forward and one backward pass per image (the pullback of
    the one-hot rows of the labels)."""
    xp = get_array_module(x)
    num_classes = substitute.logits(x[:1]).shape[1]
    _, gradient = substitute.logit_gradient(x, xp.eye(num_classes, dtype=x.dtype)[labels])
    return x + x.dtype.type(lam) * xp.sign(gradient)


def train_substitute(oracle, substitute, seed_images, rounds=6, epochs=10, lam=0.1,
                     flip_round=3, batch_size=128, lr=1e-3, validation=None, seed=0,
                     progress=None):
    """Train ``substitute`` in place on the oracle's labels, growing its training set by
    Jacobian-based augmentation (the module docstring gives the algorithm and its sources).

    oracle, substitute: models (the model interface) with the same classes; the oracle is used
    only through its logits' argmax, its label. seed_images: (n, C, H, W) NumPy, in [0, 1].
    rounds: trainings (augmentations: rounds - 1); epochs, batch_size, lr: each round's
    training (Adam); lam > 0 and flip_round: the step lambda_rho (module docstring);
    validation: (x, y) NumPy, on which each round's accuracy is measured (pass the oracle's
    predictions as y for the substitute's agreement with it); seed: shuffling, per round;
    progress: as ``training.fit``'s.

    Each point is labelled once, when it joins the set, one oracle query per point (the oracle
    is deterministic: a point kept from an earlier round keeps its label): n 2^(rounds - 1)
    queries in all. (cleverhans' tutorial takes the seeds' true labels instead, and queries
    only the synthetic points.)

    Returns a record: "sizes" (rounds,) the training set of each round; "queries" the oracle
    queries; "steps" (rounds - 1,) lambda_rho of each augmentation; "accuracy" (rounds,) on
    ``validation`` after each round, or None; "x", "y" the last training set and its labels.
    """
    if not isinstance(oracle, Model) or not isinstance(substitute, Model):
        raise TypeError(f"oracle and substitute must be models (nnscratch.model.Model), got "
                        f"{type(oracle).__name__} and {type(substitute).__name__}")
    if not isinstance(seed_images, np.ndarray):
        raise TypeError(f"seed_images must be a NumPy array (N, C, H, W), got "
                        f"{type(seed_images).__name__}")
    check_unit_images(seed_images, "seed_images")
    if not len(seed_images):
        raise ValueError("seed_images must hold at least one image")
    rounds, epochs = check_integer(rounds, "rounds"), check_integer(epochs, "epochs")
    check_integer(batch_size, "batch_size")
    lam = check_real(lam, "lam", positive=True)
    flip_round = check_integer(flip_round, "flip_round", minimum=0)
    check_real(lr, "lr", positive=True)
    seed = check_seed(seed)
    if validation is not None:
        check_data(substitute, validation, "validation")
    num_classes = substitute.logits(on_device_of(substitute, seed_images[:1])).shape[1]

    x, y = seed_images, np.zeros(0, dtype=np.int64)
    record = {"sizes": [], "queries": 0, "steps": [], "accuracy": []}
    for rho in range(rounds):
        z = oracle.logits(on_device_of(oracle, x[len(y):]))            # the new points only
        if z.shape[1] != num_classes:
            raise ValueError(f"the substitute has {num_classes} classes, the oracle "
                             f"{z.shape[1]}: they must have the same")
        y = np.concatenate([y, to_numpy(z.argmax(axis=1)).astype(np.int64)])
        record["queries"] += len(z)
        history = fit(substitute, Adam(substitute, lr=lr), (x, y), epochs,
                      batch_size=batch_size, validation=validation, seed=epoch_seed(seed, rho),
                      progress=progress)
        record["sizes"].append(len(x))
        record["accuracy"].append(history["val_accuracy"][-1])
        if rho < rounds - 1:
            step = -lam if rho < flip_round else lam
            new = jacobian_augmentation(substitute, on_device_of(substitute, x),
                                        on_device_of(substitute, y), step)
            x = np.concatenate([x, to_numpy(new)])
            record["steps"].append(step)
    if validation is None:
        record["accuracy"] = None
    return {**record, "x": x, "y": y}


class TransferAttack(Attack):
    """``attack`` made on ``substitute``, its images judged on the model attacked (Papernot et
    al. 2017's last step; the substitute from ``train_substitute``, or any model).

    ``generate(model, x, y, target)`` runs ``attack.generate(substitute, x, y, target)`` and
    returns its x_adv unchanged; success is the attack's own criterion on ``model``'s logits of
    those images. Queries (on ``model``) per image: one for that final prediction, plus one when
    y defaults to ``model``'s predictions (which the substitute is then attacked with too); the
    calls to the substitute are the attacker's own, not counted. info["substitute_result"] is
    the ``AttackResult`` on the substitute (its success, queries, norms and info).

    ``attack`` must give one result row per image through ``Attack.generate`` (not HotCold or
    FoolingImages); targeted if it is. Both are objects, not settings (``objects``).
    """

    objects = ("substitute", "attack")

    def __init__(self, substitute, attack):
        if not isinstance(substitute, Model):
            raise TypeError(f"substitute must be a model (nnscratch.model.Model), got "
                            f"{type(substitute).__name__}")
        if not isinstance(attack, Attack):
            raise TypeError(f"attack must be an attack (nnscratch.attacks.Attack), got "
                            f"{type(attack).__name__}")
        if type(attack).generate is not Attack.generate:
            raise ValueError(f"{type(attack).__name__} makes its own rows (its own generate): "
                             "TransferAttack transfers attacks that give one row per image")
        self.substitute, self.attack = substitute, attack
        self.targeted = attack.targeted

    def check(self, x, y, target):
        """The inner attack's checks, so that a refusal names the attack to change."""
        return self.attack.check(x, y, target)

    def success_criterion(self, y, target):
        return self.attack.success_criterion(y, target)

    def run(self, oracle, x):
        made = self.attack.generate(self.substitute, x, oracle.y, oracle.target)
        return made.x_adv, oracle.is_adversarial(made.x_adv), {"substitute_result": made}
