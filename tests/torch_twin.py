"""The PyTorch twin of an nnscratch Sequential, for the tests that compare with reference
libraries (torchattacks, foolbox). Importing this module needs no PyTorch; calling ``twin``
does."""

import numpy as np

from nnscratch import layers


def twin(model):
    """A ``torch.nn.Sequential`` in eval mode computing what the nnscratch ``model`` computes:
    Conv2D W (O, C, kh, kw) is ``nn.Conv2d.weight``; Dense W (in, out) is ``nn.Linear.weight``
    transposed; "same" padding of an odd kernel is symmetric."""
    import torch

    modules = []
    for layer in model.layers:
        p = {k: torch.from_numpy(np.array(v)) for k, v in layer.params.items()}
        if isinstance(layer, layers.Conv2D):
            (top, bottom), (left, right) = layer.pads
            assert top == bottom and left == right
            module = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                     stride=layer.stride, padding=(top, left))
            module.weight.data.copy_(p["W"])
            module.bias.data.copy_(p["b"])
        elif isinstance(layer, layers.Dense):
            module = torch.nn.Linear(layer.in_features, layer.out_features)
            module.weight.data.copy_(p["W"].T)
            module.bias.data.copy_(p["b"])
        elif isinstance(layer, layers.MaxPool2D):
            module = torch.nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, layers.ReLU):
            module = torch.nn.ReLU()
        elif isinstance(layer, layers.Dropout):
            module = torch.nn.Dropout(layer.p)
        elif isinstance(layer, layers.Flatten):
            module = torch.nn.Flatten()
        else:
            raise NotImplementedError(f"no PyTorch twin for {layer.describe()}")
        modules.append(module)
    return torch.nn.Sequential(*modules).eval()
