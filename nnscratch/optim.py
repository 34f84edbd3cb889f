"""Optimizers and learning-rate schedules.

An optimizer updates a model's parameters in place from the gradients its last
``backward(param_grads=True)`` left in ``layer.grads``. The update rules follow PyTorch's
conventions exactly (so that the same weights and gradients give the same new weights):

SGD, with g the gradient and p the parameter::

    g <- g + weight_decay * p                  (L2 penalty added to the gradient)
    b <- g                     on the first step
    b <- momentum * b + g      afterwards       (no dampening)
    g <- g + momentum * b      if nesterov, else g <- b
    p <- p - lr * g

Adam (Kingma & Ba), with t the step count::

    g <- g + weight_decay * p
    m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
    p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
"""

import math

from nnscratch.backend import get_array_module, to_device, to_numpy
from nnscratch.checks import check_integer, check_real


class Optimizer:
    """Holds the model, the learning rate ``lr`` (a schedule may change it between epochs) and
    per-parameter state keyed by the parameter's qualified name ("layer.param")."""

    def __init__(self, model, lr):
        self.model = model
        self.lr = check_real(lr, f"{type(self).__name__}: learning rate lr", positive=True)
        self.state = {}
        self.steps = 0

    def step(self):
        """Update every parameter from its gradient (in place)."""
        parameters = self.model.parameters()
        for name, _, grad in parameters:      # check them all first: fail without a half-step
            if grad is None:
                raise RuntimeError(f"parameter {name} has no gradient: call "
                                   "model.compute_gradients(...) before optimizer.step()")
        self.steps += 1
        for name, param, grad in parameters:
            self.update(name, param, grad)

    def update(self, name, param, grad):
        raise NotImplementedError

    def state_dict(self):
        """Plain NumPy arrays (copies: later steps leave them alone) and numbers, ready for
        ``numpy.savez`` (checkpoints)."""
        arrays = {f"{name}/{slot}": to_numpy(value).copy()
                  for name, slots in self.state.items() for slot, value in slots.items()}
        return {"lr": self.lr, "steps": self.steps, "arrays": arrays}

    def load_state_dict(self, state):
        self.lr, self.steps = state["lr"], state["steps"]
        device = self.model.device or "cpu"
        self.state = {}
        for key, value in state["arrays"].items():
            name, slot = key.rsplit("/", 1)
            self.state.setdefault(name, {})[slot] = to_device(value, device).copy()


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay."""

    def __init__(self, model, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(model, lr)
        self.momentum = check_real(momentum, "SGD: momentum")
        self.weight_decay = check_real(weight_decay, "SGD: weight_decay")
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.nesterov = nesterov

    def update(self, name, param, grad):
        dtype = param.dtype.type
        if self.weight_decay:
            grad = grad + dtype(self.weight_decay) * param
        if self.momentum:
            slots = self.state.setdefault(name, {})
            if "velocity" not in slots:
                slots["velocity"] = grad.copy()
            else:
                velocity = slots["velocity"]
                velocity *= dtype(self.momentum)
                velocity += grad
            velocity = slots["velocity"]
            grad = grad + dtype(self.momentum) * velocity if self.nesterov else velocity
        param -= dtype(self.lr) * grad


class Adam(Optimizer):
    """Adam with bias correction (PyTorch's default form, epsilon outside the square root)."""

    def __init__(self, model, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1, self.beta2 = (check_real(b, f"Adam: betas[{i}]", below=1)
                                  for i, b in enumerate(betas))
        self.eps = check_real(eps, "Adam: eps", positive=True)
        self.weight_decay = check_real(weight_decay, "Adam: weight_decay")

    def update(self, name, param, grad):
        xp = get_array_module(param)
        dtype = param.dtype.type
        if self.weight_decay:
            grad = grad + dtype(self.weight_decay) * param
        slots = self.state.setdefault(name, {})
        if "m" not in slots:
            slots["m"], slots["v"] = xp.zeros_like(param), xp.zeros_like(param)
        m, v = slots["m"], slots["v"]
        m *= dtype(self.beta1)
        m += dtype(1 - self.beta1) * grad
        v *= dtype(self.beta2)
        v += dtype(1 - self.beta2) * grad * grad
        bias1 = 1 - self.beta1 ** self.steps
        bias2 = 1 - self.beta2 ** self.steps
        denominator = xp.sqrt(v) / dtype(math.sqrt(bias2)) + dtype(self.eps)
        param -= dtype(self.lr / bias1) * m / denominator


def make_optimizer(model, name, lr, momentum=0.0, weight_decay=0.0):
    """The optimizer called ``name`` ("sgd" or "adam"), as the training recipes name them."""
    if name == "sgd":
        return SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(model, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


def make_schedule(name, epochs):
    """The learning-rate schedule a recipe names: None (constant) or "cosine" over ``epochs``."""
    if name is None:
        return None
    if name == "cosine":
        return CosineLR(epochs)
    raise ValueError(f"unknown schedule {name!r}; choose cosine or none")


class StepLR:
    """lr(epoch) = base_lr * gamma ** (epoch // step_size), epoch counted from 0."""

    def __init__(self, step_size, gamma=0.1):
        self.step_size = check_integer(step_size, "StepLR: step_size")
        self.gamma = check_real(gamma, "StepLR: gamma", positive=True)

    def __call__(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR:
    """lr(epoch) = min_lr + (base_lr - min_lr) (1 + cos(pi epoch / total_epochs)) / 2."""

    def __init__(self, total_epochs, min_lr=0.0):
        self.total_epochs = check_integer(total_epochs, "CosineLR: total_epochs")
        self.min_lr = check_real(min_lr, "CosineLR: min_lr")

    def __call__(self, base_lr, epoch):
        progress = min(epoch, self.total_epochs) / self.total_epochs
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
