"""The Square attack (nnscratch/attacks/square.py): the p schedule, the side, the bump, one
step of each norm, the contract on every backend, vertices of the L-inf ball, exact query
counts, never a gradient, stronger than random vertices, targets, refusals; and parity with
torchattacks 3.5.1's Square on the PyTorch twin of small_cnn trained on digits."""

import numpy as np
import pytest

from nnscratch import data
from nnscratch.attacks import Square
from nnscratch.attacks.criteria import Misclassification, MisclassificationNotRejected
from nnscratch.attacks.square import bump, square_fraction
from nnscratch.backend import device_of, to_numpy

from test_attacks import Counting, images, tiny_model

# The authors' p_selection, by hand: (last iteration, divisor of p_init up to it). For 10,000
# queries p halves after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000; for 1,000
# after a tenth of each. A run of n queries takes n - 1 iterations (0 .. n - 2) after its start.
SCHEDULES = {10000: [(10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
                     (6000, 128), (8000, 256), (9998, 512)],
             1000: [(1, 1), (5, 2), (20, 4), (50, 8), (100, 16), (200, 32), (400, 64),
                    (600, 128), (800, 256), (998, 512)]}


@pytest.mark.parametrize("n", [1000, 10000])
def test_the_p_schedule_is_the_authors(n):
    expected, first = [], 0
    for last, divisor in SCHEDULES[n]:
        expected += [0.8 / divisor] * (last - first + 1)
        first = last + 1
    assert [square_fraction(i, n, 0.8) for i in range(n - 1)] == expected


def test_the_side_of_the_square():
    """round(sqrt(p H W)) in [1, min(H, W)]; l2: at least 3 and odd, then at most min(H, W)."""
    linf, l2 = Square(0.1), Square(0.5, norm="l2")
    assert [linf.side(p, 8, 8) for p in (1.0, 0.8, 0.4, 0.2, 0.05, 0.001)] == [8, 7, 5, 4, 2, 1]
    assert [l2.side(p, 8, 8) for p in (1.0, 0.8, 0.4, 0.2, 0.05, 0.001)] == [8, 7, 5, 5, 3, 3]
    assert linf.side(0.8, 28, 28) == l2.side(0.8, 28, 28) == 25


def test_the_bump_is_torchattacks_eta():
    """Unit norm, + above and - below the middle row (or, transposed, left and right): the
    authors' meta pseudo-gaussian, as torchattacks computes it, for sides 1 to 9."""
    torch = pytest.importorskip("torch")
    torchattacks = pytest.importorskip("torchattacks")
    from torch_twin import twin
    reference = torchattacks.Square(twin(tiny_model(np)), norm="L2")
    reference.device = torch.device("cpu")
    for side in range(1, 10):
        theirs = reference.eta(side).double().numpy()
        ours = bump(side)
        assert np.linalg.norm(ours) == pytest.approx(1)
        assert (ours[:side // 2] > 0).all() and (ours[side // 2:] < 0).all()
        assert (np.allclose(theirs, ours, rtol=1e-6, atol=1e-7) or
                np.allclose(theirs, ours.T, rtol=1e-6, atol=1e-7))


# ------------------------------------------------------------------ one step

def vertices(x, x_adv, eps):
    """(N,) bool: every entry of x_adv is x + eps or x - eps clipped to [0, 1], in x's dtype."""
    eps = x.dtype.type(eps)
    at = (x_adv == np.clip(x + eps, 0, 1)) | (x_adv == np.clip(x - eps, 0, 1))
    return at.reshape(len(x), -1).all(axis=1)


def changed_box(a, b):
    """(N, 2): the rows and columns spanned by the pixels where a and b (N, C, H, W) differ."""
    def span(changed):
        return np.ptp(np.flatnonzero(changed)) + 1 if changed.any() else 0

    rows, cols = (a != b).any(axis=(1, 3)), (a != b).any(axis=(1, 2))
    return np.array([[span(r), span(c)] for r, c in zip(rows, cols)])


def test_a_linf_step_changes_one_square_of_the_side_p_gives_and_stays_at_vertices():
    x = images(np, n=20)
    attack = Square(0.1)
    rng = np.random.default_rng(0)
    x_best = attack.start(x, rng)
    assert vertices(x, x_best, 0.1).all()
    for p, side in ((0.8, 7), (0.2, 4), (0.01, 1)):
        x_new = attack.candidate(x, x_best, p, rng)
        assert vertices(x, x_new, 0.1).all()
        box = changed_box(x_new, x_best)
        assert (box >= 1).all() and (box <= side).all()        # something changed, in a square


def test_an_l2_step_keeps_the_norm_and_changes_two_squares_at_most():
    """x at 0.5 and eps 1: nothing is clipped, so ||x_new - x||_2 = eps exactly (float32)."""
    x = np.full((20, 3, 12, 12), 0.5, dtype=np.float32)
    attack = Square(1.0, norm="l2")
    rng = np.random.default_rng(0)
    x_best = attack.start(x, rng)
    np.testing.assert_allclose(np.linalg.norm((x_best - x).reshape(20, -1), axis=1), 1,
                               rtol=1e-5)
    for p, side in ((0.5, 9), (0.05, 3)):
        x_new = attack.candidate(x, x_best, p, rng)
        np.testing.assert_allclose(np.linalg.norm((x_new - x).reshape(20, -1), axis=1), 1,
                                   rtol=1e-5)
        changed = (x_new != x_best).any(axis=1).reshape(20, -1).sum(axis=1)
        assert (changed >= 1).all() and (changed <= 2 * side ** 2).all()


# ------------------------------------------------------------------ the contract

@pytest.mark.parametrize("attack", [Square(0.1, n_queries=30),
                                    Square(0.5, norm="l2", n_queries=30),
                                    Square(0.1, loss="ce", n_queries=20, restarts=2),
                                    Square(0.5, norm="l2", loss="reject_margin", n_queries=20)],
                         ids=["linf-margin", "l2-margin", "linf-ce-restarts", "l2-reject"])
def test_contract_on_every_backend(xp, attack):
    """float32 images, float64 model: x unchanged; x_adv float32 on x's device, in [0, 1], in
    the ball (L-inf: at its vertices); success is the criterion on the logits of x_adv; the
    same seed gives the same images, another seed others."""
    model, x = tiny_model(xp, dtype=np.float64), images(xp)
    before = to_numpy(x).copy()
    result = attack.generate(model, x)
    assert np.array_equal(to_numpy(x), before)
    assert result.x_adv.dtype == np.float32 and device_of(result.x_adv) == device_of(x)
    x_adv = to_numpy(result.x_adv)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (to_numpy(result.norms[attack.norm]) <= attack.eps * (1 + 1e-6) + 1e-7).all()
    if attack.norm == "linf":
        assert vertices(before, x_adv, attack.eps).all()
    y = model.predict(x)
    criterion = (MisclassificationNotRejected if attack.loss == "reject_margin"
                 else Misclassification)(y)
    np.testing.assert_array_equal(to_numpy(result.success),
                                  to_numpy(criterion(model.logits(result.x_adv))))
    assert to_numpy(result.success).any()
    again = attack.generate(model, x).x_adv
    assert np.array_equal(to_numpy(again), x_adv)
    other = Square(**{**attack.settings(), "seed": 1}).generate(model, x).x_adv
    assert not np.array_equal(to_numpy(other), x_adv)


class NoGradient(Counting):
    """Counts forward passes and refuses every gradient (all of them go through batch_vjp)."""

    def batch_vjp(self, x, rng=None, tap=None):
        raise AssertionError("the Square attack asked for a gradient")


@pytest.mark.parametrize("attack", [Square(0.1, n_queries=40),
                                    Square(0.1, n_queries=9, restarts=3),
                                    Square(0.5, norm="l2", loss="ce", n_queries=40)])
def test_queries_are_the_forward_passes_and_no_gradient_is_asked(attack):
    model, x = NoGradient(tiny_model(np)), images(np, n=12)
    result = attack.generate(model, x)
    assert int(result.queries.sum()) == model.seen
    assert (result.queries <= 1 + 1 + attack.restarts * attack.n_queries).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_query_counts_when_nothing_succeeds(norm):
    """y given, a constant model: the logits at x, then n_queries per run; failed images keep
    the start (no candidate lowers a constant loss), at the vertices in L-inf."""
    model, x = tiny_model(np, constant=True), images(np)
    y = model.predict(x)
    for restarts in (1, 3):
        result = Square(0.1, norm=norm, n_queries=25, restarts=restarts).generate(model, x, y)
        assert not result.success.any() and (result.info["failure"] == "budget reached").all()
        assert (result.queries == 1 + restarts * 25).all()
    if norm == "linf":
        assert vertices(x, result.x_adv, 0.1).all()


def test_an_image_already_adversarial_is_returned_as_it_is():
    model, x = tiny_model(np), images(np)
    y = model.predict(x)
    y[0] = (y[0] + 1) % 5
    result = Square(0.1, n_queries=20).generate(model, x, y)
    assert np.array_equal(result.x_adv[0], x[0]) and result.success[0]
    assert result.queries[0] == 1 and result.info["failure"][0] == ""


@pytest.mark.parametrize("make, message", [
    (lambda: Square(0), "eps"), (lambda: Square(-0.1), "eps"),
    (lambda: Square(0.1, norm="l1"), "norm"), (lambda: Square(0.1, loss="dlr"), "loss"),
    (lambda: Square(0.1, n_queries=0), "n_queries"), (lambda: Square(0.1, p_init=0), "p_init"),
    (lambda: Square(0.1, p_init=1.5), "p_init"), (lambda: Square(0.1, restarts=0), "restarts"),
    (lambda: Square(0.1, loss="reject_margin", targeted=True), "untargeted"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_p_init_may_be_one():
    assert Square(0.1, p_init=1).p_init == 1.0


# ------------------------------------------------------------------ on digits

@pytest.fixture(scope="module")
def trained_digits(small_cnn_on_digits):
    x, y = data.load("digits", split="test", limit=100)
    return small_cnn_on_digits, x, y


def test_stronger_than_random_vertices(trained_digits):
    """L-inf eps 0.15, 100 queries per image: the search breaks more images than 100 random
    vertices x + eps rho (rho = +-1 per entry, clipped) each. Measured: 60% vs 27% of 100 test
    images; asserted: 20 points more."""
    model, x, y = trained_digits
    square = Square(0.15, n_queries=100).generate(model, x, y)
    rng = np.random.default_rng(0)
    broken = np.zeros(len(x), dtype=bool)
    for _ in range(100):
        rho = rng.choice(np.array([-1, 1], dtype=np.float32), size=x.shape)
        broken |= model.predict(np.clip(x + np.float32(0.15) * rho, 0, 1)) != y
    assert square.success.mean() > broken.mean() + 0.2


def test_targeted(trained_digits):
    """Success = reaching the target (the next class), L-inf eps 0.3, 300 queries. Measured: 29
    of 30 images; asserted: more than half."""
    model, x, y = trained_digits
    x, y = x[:30], y[:30]
    target = (y + 1) % 10
    result = Square(0.3, n_queries=300, targeted=True).generate(model, x, y, target)
    np.testing.assert_array_equal(result.success, model.predict(result.x_adv) == target)
    assert result.success.mean() > 0.5
    assert np.array_equal(result.target, target)


def code_corners(self, rng, n, side, height, width, xp):
    """The corners of the authors' code and of torchattacks, randint(0, H - s) (at least 0):
    the squares never reach the last row and column."""
    return (xp.asarray(rng.integers(0, max(height - side, 1), n)),
            xp.asarray(rng.integers(0, max(width - side, 1), n)))


def torchattacks_robust_accuracy(net, x, y, **settings):
    import torch
    import torchattacks
    adv = torchattacks.Square(net, **settings)(torch.from_numpy(x), torch.from_numpy(y))
    with torch.no_grad():
        return float((net(adv).argmax(1).numpy() == y).mean())


@pytest.mark.parametrize("norm, eps", [("linf", 0.1), ("l2", 0.5)])
def test_robust_accuracy_is_torchattacks_with_its_corners(trained_digits, monkeypatch, norm,
                                                         eps):
    """100 test images, 1,000 queries, p_init 0.8, margin loss, seed 0 each (different
    generators); our corners replaced by the code's (``code_corners``). Measured: robust
    accuracy L-inf eps 0.1 0.69 vs 0.69, L2 eps 0.5 0.78 vs 0.77; asserted: within 3 points."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    theirs = torchattacks_robust_accuracy(twin(model), x, y, norm={"linf": "Linf", "l2": "L2"}[
        norm], eps=eps, n_queries=1000, p_init=0.8, loss="margin", seed=0)
    monkeypatch.setattr(Square, "corners", code_corners)
    ours = 1 - Square(eps, norm=norm, n_queries=1000).generate(model, x, y).success.mean()
    assert 0.1 < theirs < 0.9
    assert abs(ours - theirs) <= 0.03 + 1e-9


def test_the_papers_corners_make_it_stronger_than_torchattacks(trained_digits):
    """L-inf eps 0.15, 1,000 queries: squares that reach the last row and column (the paper's
    corners) break more. Measured: robust accuracy 0.23 vs 0.38; asserted: 10 points lower."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("torchattacks")
    from torch_twin import twin
    torch.set_num_threads(1)
    model, x, y = trained_digits
    theirs = torchattacks_robust_accuracy(twin(model), x, y, norm="Linf", eps=0.15,
                                          n_queries=1000, seed=0)
    ours = 1 - Square(0.15, n_queries=1000).generate(model, x, y).success.mean()
    assert ours <= theirs - 0.1
