"""Query-only (black-box) attacks: OnePixel (Su, Vargas & Sakurai 2019) and LocalSearch
(Narodytska & Kasiviswanathan 2017). They ask the model for class probabilities and predicted
labels only, never for a gradient, so they apply unchanged to a model whose gradient is useless
(a constant one, or a defence that masks gradients).

Queries (see ``Oracle``): one query is one image's prediction. A batch of S candidate images
made from image i costs image i S queries (``Oracle`` counts every row, so an index repeated S
times counts S); so does the check that decides success. Plus one per image when y defaults to
the model's predictions. The counts are exact, not estimates.

The searches run on the host (NumPy and SciPy); the candidate images are built from x on x's
array module, so the model runs where x lives and only probabilities come back.
"""

import numpy as np
from scipy.optimize import differential_evolution

from nnscratch.backend import get_array_module, to_numpy

from nnscratch.attacks.base import Attack, failure_reasons
from nnscratch.checks import check_flag, check_integer, check_real, check_seed

# LocalSearch probes at most this many pixel locations per round: foolbox 2's cap, "for
# efficiency" (the paper probes the whole neighbourhood; on 28x28 MNIST with d = 5 that is up
# to 5 * 121 locations a round).
MAX_PROBES = 128


def image_rng(seed, i):
    """The host generator of image i (its index in x): an independent stream per image."""
    return np.random.default_rng([seed, i])


class FoundAdversarial(Exception):
    """Raised from the objective to stop differential evolution as soon as a generation (or the
    initial population) holds an adversarial candidate: scipy's callback runs only after each
    generation, not after the initial population."""


class OnePixel(Attack):
    """One-pixel attack (Su, Vargas & Sakurai 2019, "One Pixel Attack for Fooling Deep Neural
    Networks"): differential evolution (DE) over ``pixels`` candidate pixels per image.

    A candidate is (row, column, value_1 .. value_C) for each of the ``pixels`` pixels,
    bounds [0, H) x [0, W) x [0, 1]^C; it is applied by setting pixel
    (floor(row), floor(column)) of x, every channel, to the values (a later pixel of the same
    candidate overwrites an earlier one at the same position). The fitness, minimised, is
    p_y(x') (the true class's probability, untargeted) or -p_t(x') (targeted, t the target).
    Each image gets its own DE run with scipy's ``differential_evolution``, its generator
    seeded from (seed, i), i the image's index in x: deterministic given seed.

    Settings, the paper's: ``population`` = 400 candidates, F = 0.5, no crossover, at most
    ``max_iterations`` = 100 generations, stop at success. Mapped onto scipy:
    - the paper's mutation x_i(g+1) = x_r1(g) + F (x_r2(g) - x_r3(g)) with r1 != r2 != r3 is
      ``strategy="rand1bin"``, ``mutation=0.5`` (a float: no dithering);
    - no crossover is ``recombination=1.0``: binomial crossover then takes every parameter from
      the mutant, so the trial is the mutant itself;
    - a child replaces its parent when its fitness is lower (scipy's selection, the paper's);
    - the initial population is given (``init``) so its size is exactly ``population``
      (scipy's ``popsize`` multiplies the number of parameters): positions uniform over the
      image, values N(0.5, 0.5) clipped to [0, 1] (the paper's U(1, 32) and N(128, 127) on
      0-255 CIFAR pixels, rescaled);
    - ``vectorized=True`` (which implies ``updating="deferred"``): each generation is one
      model call on all 400 candidates; ``polish=False`` (L-BFGS-B polishing would spend
      queries on finite differences; the paper has none); scipy's convergence test is switched
      off (``tol=0, atol=-1``) so a run ends only at success or after ``max_iterations``;
    - scipy re-draws a mutant parameter that leaves the bounds uniformly inside them (the paper
      does not say); a row or column of exactly H or W is taken as H - 1 or W - 1.
    Stop: as soon as any candidate evaluated (initial population or a generation) is
    adversarial (predicted class != y, or == target); the paper stops early on a probability
    threshold, we on the predicted class, which is what success means here.

    Queries per image: ``population`` for the initial population plus ``population`` per
    generation run, so at most population * (max_iterations + 1); success comes from those
    predictions, without a further query.

    x_adv: the adversarial candidate with the lowest fitness in the first generation that had
    one; for a failed image, the best (lowest-fitness) candidate of the last generation, which
    changes up to ``pixels`` pixels without fooling the model.
    info: "failure" (N,) "" or "budget reached"; "pixels" (N, pixels, 2) int64 the (row,
    column) of the pixels x_adv changes (set to their new values; a value may equal the old
    one); "values" (N, pixels, C) the values written; "generations" (N,) int64 the generations
    run (0: the initial population held an adversarial, or max_iterations = 0).
    """

    def __init__(self, pixels=1, population=400, max_iterations=100, seed=0, *, targeted=False):
        self.pixels = check_integer(pixels, "pixels")
        # differential evolution picks 3 other members (scipy asks for 5 at least)
        self.population = check_integer(population, "population", minimum=5)
        self.max_iterations = check_integer(max_iterations, "max_iterations", minimum=0)
        self.seed = check_seed(seed)
        self.targeted = check_flag(targeted, "targeted")

    def initial_population(self, rng, shape):
        """(population, pixels * (2 + C)) host: rows, columns uniform, values N(0.5, 0.5)."""
        channels, height, width = shape
        size = (self.population, self.pixels)
        rows = rng.uniform(0, height, size)[..., None]
        columns = rng.uniform(0, width, size)[..., None]
        values = np.clip(rng.normal(0.5, 0.5, size + (channels,)), 0, 1)
        return np.concatenate([rows, columns, values], axis=2).reshape(self.population, -1)

    def apply(self, image, candidates):
        """Candidate images (S, C, H, W) on ``image``'s module: ``image`` (C, H, W), candidates
        (S, pixels * (2 + C)) host. Returns them with the positions (S, pixels, 2) and the
        values (S, pixels, C) they set."""
        xp = get_array_module(image)
        channels, height, width = image.shape
        s = len(candidates)
        candidates = candidates.reshape(s, self.pixels, 2 + channels)
        rows = np.minimum(candidates[..., 0].astype(np.int64), height - 1)   # floor, >= 0
        columns = np.minimum(candidates[..., 1].astype(np.int64), width - 1)
        values = candidates[..., 2:].astype(image.dtype)
        batch = xp.repeat(image[None], s, axis=0)
        every = xp.arange(s)
        for k in range(self.pixels):
            batch[every, :, xp.asarray(rows[:, k]), xp.asarray(columns[:, k])] = \
                xp.asarray(values[:, k])
        return batch, np.stack([rows, columns], axis=2), values

    def attack_one(self, oracle, x, i):
        """DE on image i. Returns (x_adv (C, H, W), success, positions, values, generations)."""
        image = x[i]
        label = int(oracle.y[i] if oracle.target is None else oracle.target[i])
        sign = 1 if oracle.target is None else -1
        rng = image_rng(self.seed, i)
        calls = []                        # one per model call: initial population, generations

        def fitness(candidates):          # candidates (D, S): scipy's vectorised layout
            batch, positions, values = self.apply(image, candidates.T)
            proba = to_numpy(oracle.probabilities(batch, np.full(len(batch), i)))
            predicted = proba.argmax(axis=1)
            adversarial = predicted != label if sign == 1 else predicted == label
            energy = sign * proba[:, label].astype(np.float64)
            calls.append(None)
            if adversarial.any():
                best = np.flatnonzero(adversarial)[np.argmin(energy[adversarial])]
                raise FoundAdversarial(batch[best], positions[best], values[best])
            return energy

        bounds = ([(0, image.shape[1]), (0, image.shape[2])] + [(0, 1)] * image.shape[0]) \
            * self.pixels
        try:
            result = differential_evolution(
                fitness, bounds, strategy="rand1bin", maxiter=self.max_iterations,
                mutation=0.5, recombination=1.0, seed=rng, polish=False, tol=0, atol=-1,
                init=self.initial_population(rng, image.shape), vectorized=True,
                updating="deferred")
        except FoundAdversarial as found:
            adv, positions, values = found.args
            return adv, True, positions, values, len(calls) - 1
        batch, positions, values = self.apply(image, result.x[None])
        return batch[0], False, positions[0], values[0], len(calls) - 1

    def run(self, oracle, x):
        xp = get_array_module(x)
        n, channels = len(x), x.shape[1]
        x_adv = x.copy()
        success = np.zeros(n, dtype=bool)
        positions = np.zeros((n, self.pixels, 2), dtype=np.int64)
        values = np.zeros((n, self.pixels, channels), dtype=x.dtype)
        generations = np.zeros(n, dtype=np.int64)
        for i in range(n):
            x_adv[i], success[i], positions[i], values[i], generations[i] = \
                self.attack_one(oracle, x, i)
        info = {"failure": failure_reasons(success, np.zeros(n, dtype=bool), "budget reached"),
                "pixels": positions, "values": values, "generations": generations}
        return x_adv, xp.asarray(success), info


class LocalSearch(Attack):
    """Pixel local search (Narodytska & Kasiviswanathan 2017, "Simple Black-Box Adversarial
    Attacks on Deep Neural Networks", Algorithm 3, LocSearchAdv), untargeted, as foolbox 2's
    LocalSearchAttack (whose defaults these are: r=1.5, p=10, d=5, t=5, R = ``rounds`` = 150).

    The algorithm works on images centred on zero, I = x - 0.5 in [LB, UB] = [-0.5, 0.5] (as
    foolbox 2 normalises), since its probe p * sign(I) pushes a pixel away from mid-grey::

        P_0 = 10% of the pixel locations, at random (at least 1, at most 128)
        for i = 1 .. R:
            score(l) = p_y(PERT(I_{i-1}, l)) for every location l in P_{i-1}
            P* = the t locations of lowest score
            I_i = I_{i-1} with I_i(b, l) = CYCLIC(r * I_{i-1}(b, l)) for l in P*, every channel b
            if predicted(I_i) != y: success
            P_i = every location within d (rows and columns, a (2d+1)^2 square) of a location
                  of P*, inside the image
        PERT(I, l) = I with I(:, l) = p * sign(I(:, l)), every channel of location l
        CYCLIC(v) = v + (UB - LB) if v < LB, v - (UB - LB) if v > UB, else v

    Choices the paper leaves open, and foolbox 2's where it made one:
    - the probes PERT(I, l) are not clipped: their pixel l is at 0.5 +- p (10.5 or -9.5 with
      p = 10), far outside [0, 1], as in the paper and foolbox (a pixel exactly at 0.5 has
      sign 0 and probes as 0.5). Only the probes leave [0, 1]; x_adv never does;
    - each round probes at most ``MAX_PROBES`` = 128 locations of P_{i-1}, a random subset
      when it is larger (foolbox's cap; the paper probes all);
    - ties in the score are broken by location (row-major) order, through a stable sort;
      P_i is kept as sorted locations (foolbox's is a Python set);
    - success is the top-1 class (the paper's k = 1); the attack is untargeted, as foolbox's;
    - the centring is applied to the pixels the attack changes only, so every other pixel of
      x_adv keeps x's exact value (I = x - 0.5 and back would round small values in float32).
    Randomness (P_0 and the subsets) comes from a host generator per image, seeded from
    (seed, i), i the image's index in x: deterministic given seed.

    All images run in lock step, each round one model call on the probes of every image still
    searching and one on their new images. Queries per image: per round, its probes (at most
    128) plus one for the success check; an image stops at success.
    info: "failure" (N,) "" or "budget reached"; "rounds" (N,) int64 the rounds each image ran.
    """

    can_target = False

    def __init__(self, r=1.5, p=10.0, d=5, t=5, rounds=150, seed=0):
        self.r = check_real(r, "r")
        if self.r > 2:                   # CYCLIC wraps once: r * I must stay in [-1, 1]
            raise ValueError(f"r must be a number in [0, 2], got {r!r}")
        self.p = check_real(p, "p", positive=True)
        self.d = check_integer(d, "d", minimum=0)
        self.t = check_integer(t, "t")
        self.rounds = check_integer(rounds, "rounds", minimum=0)
        self.seed = check_seed(seed)

    def cyclic(self, pixels):
        """CYCLIC(r * I) on pixels in [0, 1] (any shape), mapped to [-0.5, 0.5] and back."""
        xp = get_array_module(pixels)
        centred = pixels - pixels.dtype.type(0.5)
        v = pixels.dtype.type(self.r) * centred
        v = xp.where(v < -0.5, v + 1, xp.where(v > 0.5, v - 1, v))
        return xp.clip(v + pixels.dtype.type(0.5), 0, 1)

    def neighbourhood(self, chosen, height, width):
        """Sorted flat locations within d of any of ``chosen`` (flat host ints), in the image."""
        rows, columns = np.divmod(np.asarray(chosen), width)
        offsets = np.arange(-self.d, self.d + 1)
        near_rows = (rows[:, None, None] + offsets[None, :, None]).repeat(len(offsets), axis=2)
        near_columns = (columns[:, None, None] + offsets[None, None, :]).repeat(len(offsets),
                                                                                axis=1)
        inside = (near_rows >= 0) & (near_rows < height) & (near_columns >= 0) & \
                 (near_columns < width)
        return np.unique(near_rows[inside] * width + near_columns[inside])

    def run(self, oracle, x):
        xp = get_array_module(x)
        n, _, height, width = x.shape
        y = to_numpy(oracle.y)
        x_adv = x.copy()
        rngs = [image_rng(self.seed, i) for i in range(n)]
        start = min(max(int(0.1 * height * width), 1), MAX_PROBES)
        locations = [np.sort(rng.permutation(height * width)[:start]) for rng in rngs]
        success = np.zeros(n, dtype=bool)
        rounds = np.zeros(n, dtype=np.int64)
        running = np.arange(n)
        half, p = x.dtype.type(0.5), x.dtype.type(self.p)
        for _ in range(self.rounds):
            if not running.size:
                break
            for i in running:                           # the random subset of a large P
                if len(locations[i]) > MAX_PROBES:
                    subset = rngs[i].permutation(len(locations[i]))[:MAX_PROBES]
                    locations[i] = np.sort(locations[i][subset])
            owner = np.concatenate([np.full(len(locations[i]), i) for i in running])
            flat = np.concatenate([locations[i] for i in running])
            probe_rows, probe_columns = (xp.asarray(a) for a in np.divmod(flat, width))
            probes = x_adv[xp.asarray(owner)]
            every = xp.arange(len(probes))
            # PERT: I(:, l) = p * sign(I(:, l)) on the centred image, i.e. 0.5 + p * sign(x - 0.5)
            location = probes[every, :, probe_rows, probe_columns]          # (S, C)
            probes[every, :, probe_rows, probe_columns] = half + p * xp.sign(location - half)
            proba = to_numpy(oracle.probabilities(probes, owner))
            scores = proba[np.arange(len(owner)), y[owner]]
            chosen_rows, chosen_images = [], []
            for i in running:
                mine = owner == i
                best = flat[mine][np.argsort(scores[mine], kind="stable")[:self.t]]
                chosen_rows.append(best)
                chosen_images.append(np.full(len(best), i))
                locations[i] = self.neighbourhood(best, height, width)
            best, images = np.concatenate(chosen_rows), np.concatenate(chosen_images)
            rows, columns = (xp.asarray(a) for a in np.divmod(best, width))
            images = xp.asarray(images)
            x_adv[images, :, rows, columns] = self.cyclic(x_adv[images, :, rows, columns])
            rounds[running] += 1
            adversarial = to_numpy(oracle.is_adversarial(x_adv[xp.asarray(running)],
                                                         xp.asarray(running)))
            success[running[adversarial]] = True
            running = running[~adversarial]
        info = {"failure": failure_reasons(success, np.zeros(n, dtype=bool), "budget reached"),
                "rounds": rounds}
        return x_adv, xp.asarray(success), info
