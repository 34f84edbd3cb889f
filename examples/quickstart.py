"""nnscratch in one page: train a small CNN, then attack it through its input gradient.

Runs on scikit-learn's bundled 8x8 digits (no download), in well under a minute:

    python examples/quickstart.py
"""

import numpy as np

from nnscratch import data, zoo
from nnscratch.backend import new_rng
from nnscratch.optim import Adam

# Data: x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64.
x_train, y_train = data.load("digits", "train")
x_test, y_test = data.load("digits", "test")

# A network from the zoo, and a training loop written out: one forward pass with dropout,
# one backward pass that fills every layer's grads, one optimizer step.
model = zoo.build("small_cnn", seed=0)
print(model.summary())
optimizer = Adam(model, lr=0.005)
rng = new_rng(0)                                   # drives shuffling and dropout masks
for epoch in range(10):
    order = np.random.default_rng(epoch).permutation(len(x_train))
    for start in range(0, len(order), 32):
        batch = order[start:start + 32]
        loss, _ = model.compute_gradients(x_train[batch], y_train[batch], rng)
        optimizer.step()
    accuracy = (model.predict(x_test) == y_test).mean()
    print(f"epoch {epoch + 1}: last batch loss {loss:.3f}, test accuracy {accuracy:.3f}")

# The fast gradient sign method (Goodfellow et al.): one step of size eps along the sign of
# the input gradient of each image's own loss, clipped back into the pixel range.
losses, grad = model.loss_gradient(x_test, y_test)      # grad: (N, 1, 8, 8)
for eps in (0.05, 0.1, 0.2):
    x_adv = np.clip(x_test + eps * np.sign(grad), 0, 1)
    accuracy = (model.predict(x_adv) == y_test).mean()
    print(f"FGSM eps={eps}: test accuracy {accuracy:.3f}")
