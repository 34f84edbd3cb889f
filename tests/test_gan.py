"""The GAN (nnscratch/gan): its loss against finite differences, one generator step against the
same step by PyTorch autograd on the same weights, the discriminator left alone by it, bitwise
resume, the report's parameter counts, the judge, refusals, and `nnscratch gan` end to end on
a few images."""

import json

import numpy as np
import pytest

from nnscratch import io
from nnscratch.backend import new_rng
from nnscratch.gan import GAN, discriminator, generator, sigmoid_cross_entropy, train
from nnscratch.gan.judge import judge
from nnscratch.gradcheck import assert_gradients_close, compare_input_gradient

SHAPE = (1, 8, 8)                   # 8 -> 4 -> 2 -> 1 in D; 4 -> 8 in G


def tiny_gan(dropout=0.0, seed=0):
    return GAN(generator(SHAPE, latent=5, width=4, seed=seed),
               discriminator(SHAPE, seed=seed + 1, dropout=dropout))


def test_sigmoid_cross_entropy_and_its_gradient():
    """softplus(-z) for "real", softplus(z) for "fake"; finite for |z| = 1000; the gradient
    sigmoid(z) - t against central differences in float64 (tolerance of gradcheck's default)."""
    z = np.array([[-3.0], [-0.5], [0.0], [0.7], [4.0]])
    for target in (0, 1):
        loss, grad = sigmoid_cross_entropy(z, target)
        np.testing.assert_allclose(loss, np.log1p(np.exp(-z[:, 0] if target else z[:, 0])),
                                   rtol=1e-12)
        comparison = compare_input_gradient(
            "sigmoid cross-entropy", lambda v: sigmoid_cross_entropy(v, target)[1],
            lambda v: sigmoid_cross_entropy(v, target)[0].sum(), z)
        assert_gradients_close(comparison)
    loss, grad = sigmoid_cross_entropy(np.array([[1000.0], [-1000.0]]), 1)
    np.testing.assert_allclose(loss, [0.0, 1000.0])
    np.testing.assert_allclose(grad[:, 0], [0.0, -1.0])


def test_the_reports_parameter_counts():
    """The CIFAR-10 GAN's layers have the parameter counts the report prints."""
    d = discriminator((3, 32, 32))
    g = generator((3, 32, 32))
    counts = [value.size + 0 for _, value, _ in d.parameters()]
    per_layer = [counts[i] + counts[i + 1] for i in range(0, len(counts), 2)]
    assert per_layer == [1792, 73856, 147584, 295168, 4097]
    counts = [value.size for _, value, _ in g.parameters()]
    per_layer = [counts[i] + counts[i + 1] for i in range(0, len(counts), 2)]
    assert per_layer == [413696, 975086, 906542, 906542, 6429]
    assert generator((1, 28, 28)).layer_shapes()[-1] == (1, 28, 28)       # 7 -> 14 -> 28


def test_one_generator_step_equals_torch_autograd():
    """The generator's Adam step through D's input gradient equals PyTorch's on the same
    weights and noise (float32; rtol 1e-4 on the updated weights, whose changes are ~lr);
    D's weights and gradients are left alone."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    gan = tiny_gan()
    n = 6
    z = gan.noise(n, new_rng(3))                     # what generator_step draws first
    g_params = {k: torch.tensor(v, requires_grad=True)
                for k, v in io.weights(gan.generator).items()}
    d_params = {k: torch.tensor(v) for k, v in io.weights(gan.discriminator).items()}
    d_before = io.weights(gan.discriminator)
    gan.discriminator.layers[0].grads = {"W": "untouched", "b": "untouched"}

    def g_forward(h):
        h = F.leaky_relu(h @ g_params["dense_1.W"] + g_params["dense_1.b"], 0.2)
        h = h.reshape(n, 256, 4, 4)
        h = F.leaky_relu(F.conv_transpose2d(h, g_params["conv2dtranspose_1.W"],
                                            g_params["conv2dtranspose_1.b"], stride=2,
                                            padding=1), 0.2)
        return torch.tanh(F.conv2d(h, g_params["conv2d_1.W"], g_params["conv2d_1.b"],
                                   padding=1))

    def d_forward(h):
        h = F.leaky_relu(F.conv2d(h, d_params["conv2d_1.W"], d_params["conv2d_1.b"],
                                  padding=1), 0.2)
        for k in (2, 3, 4):
            h = F.leaky_relu(F.conv2d(h, d_params[f"conv2d_{k}.W"], d_params[f"conv2d_{k}.b"],
                                      stride=2, padding=1), 0.2)
        return torch.flatten(h, 1) @ d_params["dense_1.W"] + d_params["dense_1.b"]

    loss = F.softplus(-d_forward(g_forward(torch.from_numpy(z)))).mean()
    optimizer = torch.optim.Adam(list(g_params.values()), lr=2e-4, betas=(0.5, 0.999))
    loss.backward()
    optimizer.step()
    ours = gan.generator_step(n, new_rng(3))
    assert ours == pytest.approx(float(loss.detach()), rel=1e-5)
    for name, value in io.weights(gan.generator).items():
        np.testing.assert_allclose(value, g_params[name].detach().numpy(), rtol=1e-4, atol=1e-7,
                                   err_msg=name)
    for name, value in io.weights(gan.discriminator).items():
        np.testing.assert_array_equal(value, d_before[name])
    assert gan.discriminator.layers[0].grads == {"W": "untouched", "b": "untouched"}


def test_resume_is_bitwise(tmp_path):
    images = np.random.default_rng(0).random((48,) + SHAPE).astype(np.float32)
    straight = tiny_gan(dropout=0.4)
    train(straight, images, 2, batch_size=16, seed=5, progress=False)
    stopped = tiny_gan(dropout=0.4)
    first = train(stopped, images, 1, batch_size=16, seed=5, checkpoint_dir=tmp_path,
                  progress=False)
    resumed = tiny_gan(dropout=0.4)
    history = train(resumed, images, 2, batch_size=16, seed=5, checkpoint_dir=tmp_path,
                    resume=True, progress=False)
    assert history["g_loss"][0] == first["g_loss"][0] and len(history["g_loss"]) == 2
    for model, other in ((resumed.generator, straight.generator),
                         (resumed.discriminator, straight.discriminator)):
        for name, value in io.weights(model).items():
            np.testing.assert_array_equal(value, io.weights(other)[name], err_msg=name)
    with pytest.raises(ValueError, match="batch_size"):
        train(tiny_gan(), images, 3, batch_size=8, seed=5, checkpoint_dir=tmp_path, resume=True,
              progress=False)


def test_judge_measures():
    class Fixed:                                   # always class 0 with p = 0.95, or uniform
        def __init__(self, p):
            self.p = p

        def predict_proba(self, x):
            return np.tile(self.p, (len(x), 1))

    images = np.zeros((10,) + SHAPE, dtype=np.float32)
    collapsed = judge(Fixed(np.array([0.95] + [0.05 / 9] * 9)), images)
    assert collapsed["coverage"] == pytest.approx(0.1) and collapsed["confident"] == 1.0
    assert collapsed["histogram"] == [10] + [0] * 9
    unsure = judge(Fixed(np.full(10, 0.1)), images)
    assert unsure["confidence"] == pytest.approx(0.1) and unsure["confident"] == 0.0


@pytest.mark.parametrize("make, message", [
    (lambda: GAN(generator((1, 8, 8)), discriminator((1, 28, 28))),
     r"generator makes images of shape \(1, 8, 8\), the discriminator takes \(1, 28, 28\)"),
    (lambda: generator((1, 8, 8), latent=0), "latent"),
    (lambda: generator((1, 7, 7)), "side halves"),
    (lambda: train(tiny_gan(), np.zeros((4,) + SHAPE, np.float32), 1, batch_size=16),
     "fewer than half a batch"),
])
def test_refusals(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_command_trains_writes_and_resumes(mnist_cached, tmp_path, monkeypatch, capsys):
    """`nnscratch gan` on 100 images with a narrow generator (its judge trained on 500 images
    instead of 10,000): every file, a refused second run, a refused resume with other settings,
    and a resume to a second epoch."""
    from nnscratch.commands import gan as command
    from nnscratch.commands import main
    monkeypatch.setattr(command, "JUDGE_TRAINING", 500)
    out = tmp_path / "gan"
    base = ["gan", "--images", "100", "--width", "4", "--batch-size", "32", "--out", str(out),
            "--quiet"]
    assert main(base + ["--epochs", "1"]) == 0
    for name in ("config.json", "gan_checkpoint.npz", "samples/epoch_001.png", "losses.png",
                 "history.json", "summary.json", "generator.npz", "discriminator.npz"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["generated"]) == {"confidence", "confident", "coverage", "histogram"}
    assert sum(summary["real"]["histogram"]) == 1000 and 0.1 <= summary["real"]["coverage"] <= 1
    capsys.readouterr()
    assert main(base + ["--epochs", "1"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(base + ["--width", "5", "--resume"]) == 2
    assert "width 4 there, 5 now" in capsys.readouterr().err
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    assert len(json.loads((out / "history.json").read_text())["g_loss"]) == 2
    assert (out / "samples" / "epoch_002.png").is_file()


def test_the_quick_check_fails_a_generator_that_never_catches_up():
    """``dynamics``: a discriminator that wins for good (a generator that does not learn) fails
    the quick run's check; one that rises and falls back passes."""
    from nnscratch.commands.gan import dynamics

    def history(accuracies):
        return {"d_accuracy_real": accuracies, "d_accuracy_fake": accuracies}
    assert all(passed for _, passed in dynamics(history([0.86, 0.96, 0.91, 0.84, 0.80])))
    assert [passed for _, passed in dynamics(history([0.9, 0.99, 1.0, 1.0, 1.0]))] == [True, False]
    assert [passed for _, passed in dynamics(history([0.5, 0.6, 0.55, 0.5, 0.5]))] == [False, True]


def test_the_quick_run_passes_its_check(mnist_cached, tmp_path, monkeypatch, capsys):
    """`nnscratch gan --quick` (1,024 images, 5 epochs of 64 steps): the discriminator's
    accuracy leaves chance and comes back, or the command exits with status 1."""
    from nnscratch.commands import gan as command
    from nnscratch.commands import main
    monkeypatch.setattr(command, "JUDGE_TRAINING", 500)        # the judge is not checked here
    out = tmp_path / "quick"
    assert main(["gan", "--quick", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["checks"]) == 2 and all(check["passed"] for check in summary["checks"])
    assert (out / "samples" / "epoch_005.png").is_file()
    assert main(["gan", "--quick", "--epochs", "2", "--out", str(tmp_path / "q")]) == 2
    assert "--quick sets images, epochs" in capsys.readouterr().err
