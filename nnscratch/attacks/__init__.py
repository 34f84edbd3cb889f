"""Adversarial attacks on the model interface.

    from nnscratch.attacks import FGSM
    result = FGSM(eps=0.3).generate(model, x)         # result.x_adv, .success, .norms, .queries

``base.py`` holds the result, the checks, the settings and the counted model calls (``Oracle``)
every attack shares; ``criteria.py`` the success criteria (``Misclassification``,
``TargetedMisclassification``, ``MisclassificationNotRejected``, ``TargetConfidence``);
``norms.py`` the per-image normalisation of a gradient and the projection into an eps-ball.
One module per family: ``gradient.py`` (FGSM, FGV), ``iterative.py`` (BIM, PGD), ``apgd.py``
(APGD: Croce & Hein's Auto-PGD, its step size set by itself, CE or DLR loss), ``fab.py`` (FAB:
Croce & Hein's fast adaptive boundary attack, minimal L-inf, L2 or L1 perturbations; its
box-constrained projections in ``fab_projection.py``), ``adaptive.py``
(EOTPGD, DetectorAwarePGD: PGD against a stochastic model or a detector), ``saliency.py``
(JSMA), ``optimization.py`` (Carlini-Wagner L2), ``lbfgs.py`` (L-BFGS), ``query.py`` (OnePixel,
LocalSearch: query only, no gradients), ``square.py`` (Square: Andriushchenko et al.'s random
search in squares, L-inf or L2, from the logits only), ``spatial.py`` (SpatialGrid: rotations
and translations; its image transforms in ``warps.py``), ``hotcold.py`` (HotCold: towards a hot
class, away from the cold one), ``fooling.py`` (FoolingImages), ``reject_aware.py``
(RejectAwarePGD: Sotgiu et al.'s attack on a model with a reject class), ``patch.py``
(AdversarialPatch: Brown et al.'s patch, per image or universal), ``substitute.py``
(train_substitute and TransferAttack: Papernot et al.'s black-box attack through a substitute
trained on the target's labels), ``autoattack.py`` (AutoAttack: Croce & Hein's sequence of
APGD-CE, APGD-T, FAB-T and Square, each on the images still robust; ``worst_case``, the
per-image worst case over any attacks' results on the same images).
"""

from nnscratch.attacks.adaptive import DetectorAwarePGD, EOTPGD
from nnscratch.attacks.apgd import APGD
from nnscratch.attacks.autoattack import AutoAttack, worst_case
from nnscratch.attacks.base import Attack, AttackResult, perturbation_norms
from nnscratch.attacks.criteria import (Misclassification, MisclassificationNotRejected,
                                        TargetConfidence, TargetedMisclassification)
from nnscratch.attacks.fab import FAB
from nnscratch.attacks.fooling import FoolingImages
from nnscratch.attacks.gradient import FGSM, FGV
from nnscratch.attacks.hotcold import HotCold
from nnscratch.attacks.iterative import BIM, PGD
from nnscratch.attacks.lbfgs import LBFGS
from nnscratch.attacks.optimization import CarliniWagnerL2
from nnscratch.attacks.patch import AdversarialPatch
from nnscratch.attacks.query import LocalSearch, OnePixel
from nnscratch.attacks.reject_aware import RejectAwarePGD
from nnscratch.attacks.saliency import JSMA
from nnscratch.attacks.spatial import SpatialGrid
from nnscratch.attacks.square import Square
from nnscratch.attacks.substitute import TransferAttack, train_substitute

__all__ = ["Attack", "AttackResult", "perturbation_norms", "FGSM", "FGV", "BIM", "PGD", "APGD",
           "FAB", "AutoAttack", "worst_case", "EOTPGD", "DetectorAwarePGD", "JSMA",
           "CarliniWagnerL2", "LBFGS", "OnePixel", "LocalSearch", "Square", "SpatialGrid",
           "HotCold", "FoolingImages", "RejectAwarePGD", "TransferAttack", "train_substitute",
           "AdversarialPatch", "Misclassification", "TargetedMisclassification",
           "MisclassificationNotRejected", "TargetConfidence"]
