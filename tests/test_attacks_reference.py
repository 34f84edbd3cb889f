"""FGSM, BIM and PGD against torchattacks 3.5.1 on a PyTorch twin with the same weights.

Install the reference with ``pip install --no-deps torchattacks==3.5.1`` (its torchvision
requirement would replace a CPU torch with a CUDA build; these three attacks import without it).
The adversarial images must be the same except where a gradient is within rounding of zero or
ambiguous to rounding. Two causes were seen (200 digits test images): the libraries sum in
different orders (and torchattacks averages the loss over the batch), so a gradient component
near zero may change sign; and max-pool windows whose values tie (digits' constant background
makes conv outputs tie exactly, and a different summation order, even a different batch size,
turns an exact tie into a near one) route the gradient to different pixels. Measured:
FGSM 2, BIM 2, PGD-40 8 differing values of 12,800. At most 0.1% may differ by more than 1e-6.
"""


import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchattacks = pytest.importorskip("torchattacks")

from nnscratch import data  # noqa: E402
from nnscratch.attacks import BIM, FGSM, PGD  # noqa: E402
from torch_twin import twin  # noqa: E402

torch.set_num_threads(1)
ALLOWED = 1e-3     # fraction of pixel values that may differ


@pytest.fixture(scope="module")
def setup(small_cnn_on_digits):
    model = small_cnn_on_digits
    x_test, y_test = data.load("digits", split="test", limit=200)
    return model, twin(model), x_test, y_test


CASES = {
    "fgsm": (FGSM(0.1), lambda net: torchattacks.FGSM(net, eps=0.1)),
    "bim": (BIM(0.1, step=0.02, steps=10), lambda net: torchattacks.BIM(net, 0.1, 0.02, 10)),
    "pgd": (PGD(0.3, step=0.01, steps=40, random_start=False),
            lambda net: torchattacks.PGD(net, 0.3, 0.01, 40, random_start=False)),
}


def test_the_twin_computes_the_same_logits(setup):
    model, net, x, _ = setup
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.logits(x), theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_same_adversarial_images_as_torchattacks(setup, name):
    model, net, x, y = setup
    ours, reference = CASES[name]
    x_adv = ours.generate(model, x, y).x_adv
    theirs = reference(net)(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    differ = np.abs(x_adv - theirs) > 1e-6
    assert differ.mean() <= ALLOWED, f"{differ.sum()} of {differ.size} pixel values differ"
