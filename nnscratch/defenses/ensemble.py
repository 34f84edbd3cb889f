"""Bagging with noise (Harms, Harper & Sunkara 2019, CSCE496 final project report, section
5.2.2, after Strauss et al. 2018, "Ensemble methods as a defense to adversarial perturbations
against deep neural networks"): M networks of one architecture, each trained on its own noisy
bootstrap replicate of the training set, combined into one model.

Member m's training set, drawn by a generator seeded with (seed, m)::

    x~     = clip(x + sigma * e, 0, 1)      e ~ N(0, 1), shaped like x (N, C, H, W)
    index  = N draws from range(N) with replacement
    data_m = (x~[index], y[index])          (N, C, H, W), (N,)

The report leaves open, and we choose:
- sigma: a parameter (``noise_sigma``); the study sets it.
- whether the noise is redrawn per member: it is, with the replicate (both from (seed, m)), so
  the members differ in their noise as in their draws. Following the report's order (noise
  added "to each of the images in the training set before generating the bootstrap
  aggregates"), an image drawn twice into one replicate carries the same noise.
- clipping: to [0, 1], the range of the images every model and attack here takes.
- the combination ("some average or majority vote"): the mean of the members' softmax
  probabilities, differentiable, so an attack can target the ensemble whole; the majority vote
  as ``predict_vote`` (it has no gradient). ``predict`` is the argmax of the mean.

The ensemble's logits, from the members' logits z_m (N, K) and p_m = softmax(z_m)::

    L = log((1/M) sum_m p_m) = logsumexp_m(log_softmax(z_m)) - log M        (N, K)

so softmax(L) is the mean probability. Its vector-Jacobian product: with
w_{m,k} = p_{m,k} / sum_m' p_{m',k} (member m's share of class k's total),

    dL_k/dz_{m,j} = w_{m,k} (delta_kj - p_{m,j})
    pullback(g) = sum_m member_pullback_m(u_m - p_m sum_k u_{m,k}),   u_m = g * w_m (N, K)

Any prefix of the members is itself such an ensemble (``prefix(k)``): member m depends only on
(seed, m), so the ensembles of sizes 1..M cost one training of M members.
"""

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nnscratch import files
from nnscratch.backend import get_array_module, to_device
from nnscratch.checks import check_integer, check_labels, check_real, check_seed
from nnscratch.model import Model, Sequential
from nnscratch.model.interface import LOGITS, check_unit_images
from nnscratch.ops import log_softmax
from nnscratch.training import fit_recipe

WEIGHTS, DATA, TRAINING = 0, 1, 2       # what a member's seed is for (``member_seed``)
SETTINGS = "ensemble.json"              # the ensemble's settings, in its checkpoint folder


def member_seed(seed, m, use):
    """The integer seed of member m's initial weights (WEIGHTS), bootstrap and noise (DATA) or
    shuffling and dropout in training (TRAINING): a pure function of (seed, m, use)."""
    return int(np.random.SeedSequence([seed, m, use]).generate_state(1)[0])


class BaggingNoiseEnsemble(Model):
    """M networks ``builder(seed_m)`` combined by their mean softmax: x (N, C, H, W) -> (N, K).

    builder: a function seed -> a fresh untrained ``Sequential`` (e.g.
    ``lambda s: zoo.build("mnist_cnn_harms", seed=s)``), called once per member with the
    member's WEIGHTS seed; each member is its own network. n_models: M >= 1. noise_sigma: the
    standard deviation of the training noise (>= 0). Train with ``fit``.
    """

    def __init__(self, builder, n_models, noise_sigma, seed=0):
        if not callable(builder):
            raise TypeError(f"builder must be a function seed -> Sequential, got {builder!r}")
        n_models = check_integer(n_models, "n_models")
        self.noise_sigma = check_real(noise_sigma, "noise_sigma")
        self.seed = check_seed(seed)
        self.members = [builder(member_seed(self.seed, m, WEIGHTS)) for m in range(n_models)]
        for member in self.members:
            if not isinstance(member, Sequential):
                raise TypeError(f"builder must return a Sequential, got {type(member).__name__}")
        if len({id(member) for member in self.members}) < n_models:
            raise ValueError("builder returned one network twice: each member must be its own "
                             "network (build a fresh one for every seed)")
        shapes = {None if member.input_shape is None else tuple(member.input_shape)
                  for member in self.members}
        if len(shapes) > 1 or None in shapes:
            raise ValueError(f"the members must share one input_shape, got {shapes}")
        self.input_shape = shapes.pop()
        self.batch_size = min(member.batch_size for member in self.members)
        blank = to_device(np.zeros((1,) + self.input_shape, np.float32), self.device or "cpu")
        counts = [int(member.logits(blank).shape[1]) for member in self.members]
        if len(set(counts)) > 1:
            raise ValueError(f"the members have different numbers of classes: {counts}")
        self.classes = counts[0]

    @classmethod
    def from_members(cls, members, noise_sigma, seed=0):
        """The ensemble of already trained ``members`` (Sequentials, member m trained as member
        m of an ensemble of this ``noise_sigma`` and ``seed``), e.g. read back from storage: it
        predicts and attacks as the ensemble that trained them (the networks are shared, not
        copied)."""
        members = list(members)
        handed = iter(members)
        return cls(lambda seed_m: next(handed), len(members), noise_sigma, seed)

    # ---------------------------------------------- training

    def member_data(self, x, y, m):
        """Member m's noisy bootstrap replicate of (x, y) (NumPy): (x_m, y_m), as long as x."""
        rng = np.random.default_rng(member_seed(self.seed, m, DATA))
        noisy = x + rng.standard_normal(x.shape, dtype=x.dtype) * x.dtype.type(self.noise_sigma)
        np.clip(noisy, 0, 1, out=noisy)
        index = rng.integers(0, len(x), size=len(x))        # N draws with replacement
        return noisy[index], y[index]

    def fit(self, x, y, recipe, checkpoint_dir=None, progress=None, **options):
        """Train members 0..M-1 in order, member m with ``fit_recipe(member, recipe,
        member_data(x, y, m), seed=its TRAINING seed, **options)`` (options: validation,
        early_stopping, ...). Returns the M histories.

        x (N, C, H, W) NumPy floats in [0, 1], y (N,) int. checkpoint_dir: member m checkpoints
        every epoch into ``checkpoint_dir/member-m`` and resumes from there, so a killed run
        continues at the member and epoch it reached (a finished member is only reloaded); the
        folder records noise_sigma and seed, and refuses an ensemble with others.
        progress: as ``fit``'s, plus a line per member.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a NumPy array of images, got {type(x).__name__}")
        check_unit_images(x, "x")
        check_labels(y, len(x), "y")
        if checkpoint_dir is not None:
            self.record_settings(Path(checkpoint_dir))
        histories = []
        for m, member in enumerate(self.members):
            if progress is not False:
                tqdm.write(f"ensemble member {m + 1} of {len(self.members)}", file=sys.stderr)
            folder = None if checkpoint_dir is None else Path(checkpoint_dir) / f"member-{m}"
            seed = member_seed(self.seed, m, TRAINING)
            histories.append(fit_recipe(member, recipe, self.member_data(x, y, m), seed=seed,
                                        checkpoint_dir=folder, resume=folder is not None,
                                        progress=progress, **options))
        return histories

    def record_settings(self, folder):
        """Write noise_sigma and seed into ``folder``, or refuse a folder holding others."""
        settings = {"noise_sigma": self.noise_sigma, "seed": self.seed}
        path = folder / SETTINGS
        if path.exists():
            recorded = json.loads(path.read_text())
            if recorded != settings:
                raise ValueError(f"{folder} holds the members of an ensemble with {recorded}, "
                                 f"not {settings}: resuming would not continue the same run")
        else:
            files.atomic_write(path, json.dumps(settings))

    # ---------------------------------------------- the combined model

    def prefix(self, k):
        """The ensemble of the first k members (the same network objects), 1 <= k <= M."""
        k = check_integer(k, "prefix: k")
        if k > len(self.members):
            raise ValueError(f"prefix: k must be at most the {len(self.members)} members, "
                             f"got {k}")
        part = copy.copy(self)
        part.members = self.members[:k]
        return part

    def combine(self, z):
        """Members' logits z (M, n, K) -> (log p (M, n, K), log sum_m p_m (n, K)), stably."""
        xp = get_array_module(z)
        log_p = log_softmax(z)
        top = log_p.max(axis=0)
        return log_p, top + xp.log(xp.exp(log_p - top).sum(axis=0))

    def batch_logits(self, x, rng=None):
        xp = get_array_module(x)
        _, log_total = self.combine(xp.stack([m.batch_logits(x, rng) for m in self.members]))
        return log_total - math.log(len(self.members))

    def batch_vjp(self, x, rng=None, taps=(LOGITS,)):
        if tuple(taps) != (LOGITS,):
            raise ValueError(f"BaggingNoiseEnsemble has only the {LOGITS!r} tap, got {taps}")
        xp = get_array_module(x)
        member_vjps = [member.vjp(x, rng) for member in self.members]
        log_p, log_total = self.combine(xp.stack([out[LOGITS] for out, _ in member_vjps]))

        def pullback(grads):
            g = grads.get(LOGITS)                                               # (n, K)
            if g is None:
                return xp.zeros_like(x)
            dx = None
            for (_, member_pullback), log_p_m in zip(member_vjps, log_p):
                u = g * xp.exp(log_p_m - log_total)                             # g_k w_{m,k}
                g_z = u - xp.exp(log_p_m) * u.sum(axis=1, keepdims=True)        # (n, K)
                part = member_pullback({LOGITS: g_z})
                dx = part if dx is None else dx + part
            return dx

        return {LOGITS: log_total - math.log(len(self.members))}, pullback

    def predict_vote(self, x):
        """Majority vote (N,): each member votes for its argmax class; the class with the most
        votes wins, a tie going to the lowest class index."""
        self.check_images(x)
        xp = get_array_module(x)

        def batch(s):
            votes = xp.stack([m.batch_logits(x[s]).argmax(axis=1) for m in self.members])
            counts = (votes[:, :, None] == xp.arange(self.classes)).sum(axis=0)    # (n, K)
            return counts.argmax(axis=1)                   # the first of the largest counts

        return self.map_batches(len(x), batch)

    device = property(lambda self: self.members[0].device)

    def to(self, device):
        """Move every member to "cpu" or "gpu"; returns the ensemble."""
        for member in self.members:
            member.to(device)
        return self

    def __repr__(self):
        return (f"BaggingNoiseEnsemble({len(self.members)} members of {self.classes} classes, "
                f"noise_sigma={self.noise_sigma:g}, seed={self.seed})")
