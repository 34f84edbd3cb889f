"""Training two networks against each other (Goodfellow et al. 2014, "Generative Adversarial
Nets"), with the steps of Thanthulage's Keras GAN.

One step, on a batch of ``batch_size / 2`` real images x (scaled to [-1, 1])::

    discriminator D on x, labelled 1:                  Adam step on D's weights
    discriminator D on G(z), z ~ N(0, I), labelled 0:  Adam step on D's weights
    generator G through D on 2 * (batch_size / 2) new z, labelled 1 ("real"):
        L = mean softplus(-D(G(z)))         the non-saturating loss
        dL/dG(z) = D's input gradient       (one backward pass through D, its weights left alone)
        dL/dW_G  = G's backward from there: Adam step on G's weights

The generator never sees a real image: all it learns comes through the discriminator's gradient
with respect to its *input*, the same gradient an attack follows. The loss is the sigmoid
cross-entropy on D's logit z: softplus(-z) for "real", softplus(z) for "fake"; d/dz =
sigmoid(z) - target.

An epoch shows D every real image once, but for the last ``len(images) % half`` of its random
order (the Keras example draws a random half batch per step, half as many per epoch). Randomness is derived from (seed, epoch) as in ``training.fit``: the
order of the images, the latent draws and the dropout masks of an epoch depend on nothing else,
so a run resumed from its checkpoint (both networks, both optimizers, the history) gives
bitwise the same weights as one that never stopped.
"""

import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from nnscratch import files, io
from nnscratch.backend import get_array_module, new_rng
from nnscratch.checks import check_integer, check_seed
from nnscratch.optim import Adam
from nnscratch.training import epoch_seed

CHECKPOINT = "gan_checkpoint.npz"
HISTORY = ("d_loss_real", "d_loss_fake", "g_loss", "d_accuracy_real", "d_accuracy_fake")


def sigmoid_cross_entropy(z, target):
    """Per-row loss (N,) of logits z (N, 1) against a target of 0 or 1, and d(loss)/dz (N, 1):
    max(z, 0) - z t + log(1 + exp(-|z|)) (stable for any z), sigmoid(z) - t."""
    xp = get_array_module(z)
    t = z.dtype.type(target)
    e = xp.exp(-xp.abs(z))                                   # in (0, 1]: never overflows
    loss = xp.maximum(z, 0) - z * t + xp.log1p(e)
    sigmoid = xp.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return loss[:, 0], sigmoid - t


class GAN:
    """A generator (N, latent) -> images in [-1, 1] and a discriminator images -> (N, 1) logits,
    each with its own Adam (learning rate ``lr``, beta1 ``beta1``: Radford et al.'s 2e-4 and
    0.5, as the report's Keras example)."""

    def __init__(self, generator, discriminator, lr=2e-4, beta1=0.5):
        self.generator, self.discriminator = generator, discriminator
        self.latent = generator.input_shape[0]
        made = generator.layer_shapes()[-1]
        if tuple(made) != tuple(discriminator.input_shape):
            raise ValueError(f"the generator makes images of shape {tuple(made)}, the "
                             f"discriminator takes {tuple(discriminator.input_shape)}")
        self.g_optimizer = Adam(generator, lr, betas=(beta1, 0.999))
        self.d_optimizer = Adam(discriminator, lr, betas=(beta1, 0.999))

    def noise(self, n, rng):
        """(n, latent) draws of N(0, I), float32."""
        return rng.standard_normal((n, self.latent)).astype(np.float32)

    def sample(self, n, rng):
        """(n, C, H, W) generated images in [0, 1] (the generator's [-1, 1] rescaled)."""
        return (self.generator.forward(self.noise(n, rng)) + 1) / 2

    def discriminator_step(self, images, target, rng):
        """One Adam step of D on images in [-1, 1], all labelled ``target``:
        (mean loss, share D gets right)."""
        z = self.discriminator.forward(images, training=True, rng=rng)
        losses, grad = sigmoid_cross_entropy(z, target)
        self.discriminator.backward(grad / len(images), input_grad=False)
        self.d_optimizer.step()
        return float(losses.mean()), float(((z[:, 0] > 0) == bool(target)).mean())

    def generator_step(self, n, rng):
        """One Adam step of G through D on n latent draws; D's weights and their gradients are
        left alone (``param_grads=False``). Returns the mean loss."""
        fake = self.generator.forward(self.noise(n, rng), training=True, rng=rng)
        z = self.discriminator.forward(fake, training=True, rng=rng)
        losses, grad = sigmoid_cross_entropy(z, 1)
        grad_fake = self.discriminator.backward(grad / n, param_grads=False)   # D's input grad
        self.generator.backward(grad_fake, input_grad=False)
        self.g_optimizer.step()
        return float(losses.mean())

    def step(self, real, rng):
        """One step (module docstring) on real images in [-1, 1]: {history key: value}."""
        d_real = self.discriminator_step(real, 1, rng)
        fake = self.generator.forward(self.noise(len(real), rng))
        d_fake = self.discriminator_step(fake, 0, rng)
        g_loss = self.generator_step(2 * len(real), rng)
        return dict(zip(HISTORY, (d_real[0], d_fake[0], g_loss, d_real[1], d_fake[1])))


def train(gan, images, epochs, batch_size=128, seed=0, checkpoint_dir=None, resume=False,
          progress=True, after_epoch=None):
    """Train ``gan`` on ``images`` (N, C, H, W) in [0, 1] for ``epochs`` epochs; returns the
    history {key: [per epoch]} of ``HISTORY`` (means over the epoch's steps) and "seconds".

    ``checkpoint_dir``: a checkpoint after every epoch; ``resume``: continue from it (the same
    plan: seed, batch size, images, learning rate). ``after_epoch(epoch, gan, history)``: called
    after every epoch (the command saves a grid of samples there)."""
    check_integer(epochs, "epochs")
    half = check_integer(batch_size, "batch_size", minimum=2) // 2
    check_seed(seed)
    if len(images) < half:
        raise ValueError(f"{len(images)} images, fewer than half a batch ({half})")
    plan = {"seed": seed, "batch_size": batch_size, "images": len(images),
            "lr": gan.g_optimizer.lr, "beta1": gan.g_optimizer.beta1}
    path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    start, history = 0, {key: [] for key in HISTORY + ("seconds",)}
    if resume and path is not None and path.exists():
        start, history = load_checkpoint(path, gan, plan)
    for epoch in range(start, epochs):
        began, rng = time.perf_counter(), new_rng(epoch_seed(seed, epoch))
        order = rng.permutation(len(images))
        steps = [order[i:i + half] for i in range(0, len(order) - half + 1, half)]
        sums = dict.fromkeys(HISTORY, 0.0)
        for batch in tqdm(steps, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                          leave=False):
            for key, value in gan.step(images[batch] * 2 - 1, rng).items():
                sums[key] += value
        for key in HISTORY:
            history[key].append(sums[key] / len(steps))
        history["seconds"].append(time.perf_counter() - began)
        if path is not None:
            save_checkpoint(path, gan, plan, epoch, history)
        if after_epoch is not None:
            after_epoch(epoch, gan, history)
    return history


def save_checkpoint(path, gan, plan, epoch, history):
    """Both networks, both optimizers, the plan and the history, in one .npz written
    atomically."""
    arrays = {}
    for role, model, optimizer in (("generator", gan.generator, gan.g_optimizer),
                                   ("discriminator", gan.discriminator, gan.d_optimizer)):
        arrays.update({f"{role}/model/{k}": v for k, v in io.weights(model).items()})
        state = optimizer.state_dict()
        arrays.update({f"{role}/optimizer/{k}": v for k, v in state["arrays"].items()})
        plan = dict(plan, **{f"{role}_architecture": io.architecture(model)})
    meta = {"epoch": epoch, "plan": plan, "history": history, "steps": gan.g_optimizer.steps,
            "d_steps": gan.d_optimizer.steps}
    arrays["meta"] = np.array(json.dumps(meta))
    files.atomic_write(path, arrays)


def load_checkpoint(path, gan, plan):
    """Restore ``gan`` from ``path``; returns (next epoch, history). Refuses another plan."""
    arrays = io.read_npz(path, "GAN checkpoint")
    meta = json.loads(str(arrays.pop("meta")))
    expected = dict(plan, generator_architecture=io.architecture(gan.generator),
                    discriminator_architecture=io.architecture(gan.discriminator))
    for key, value in expected.items():
        if meta["plan"].get(key) != value:
            raise ValueError(f"{path} was written with another {key} ({meta['plan'].get(key)}, "
                             f"not {value}): resuming would not continue the same run")
    for role, model, optimizer, steps in (
            ("generator", gan.generator, gan.g_optimizer, meta["steps"]),
            ("discriminator", gan.discriminator, gan.d_optimizer, meta["d_steps"])):
        group = {key.split("/", 1)[1]: value for key, value in arrays.items()
                 if key.startswith(f"{role}/")}
        io.set_weights(model, {k.removeprefix("model/"): v for k, v in group.items()
                               if k.startswith("model/")})
        optimizer.load_state_dict({"lr": optimizer.lr, "steps": steps, "arrays": {
            k.removeprefix("optimizer/"): v for k, v in group.items()
            if k.startswith("optimizer/")}})
    return meta["epoch"] + 1, meta["history"]
