"""The projection FAB takes at every step (Croce & Hein 2020, "Minimally distorted adversarial
examples with a fast adaptive boundary attack", ICML, Section 3.1): the smallest move from a
point t in the box [0, 1]^d onto a hyperplane, the point staying in the box,

    minimise ||delta||_p   subject to   <w, t + delta> = b,   0 <= t + delta <= 1,

for p = inf, 2, 1, solved exactly, one problem per row: t, w (n, d), b (n,) -> delta (n, d).

With rho = b - <w, t>, sigma = sign(rho) (+1 for 0), coordinate i moves in its useful direction
sigma sign(w_i), gaining |w_i| of <w, delta> per unit, and has room m_i there: 1 - t_i if
sigma w_i > 0, else t_i. A delta reaches the hyperplane when its gain is |rho|.

L-inf and L2: delta_i = sigma sign(w_i) min(lambda r_i, m_i), r_i = 1 (L-inf) or |w_i| (L2),
with the least lambda >= 0 at which the gain

    h(lambda) = sum_i |w_i| min(lambda r_i, m_i)

reaches |rho|. L-inf: within radius lambda the best gain is h(lambda) (every coordinate as far
as lambda or its room allow). L2: delta_i = clip(lambda sigma w_i, -t_i, 1 - t_i) are the KKT
conditions of the quadratic programme. h is piecewise linear and nondecreasing, bending where a
coordinate runs out of room, at lambda_i = m_i / r_i; with the bends sorted, h at each of them
is a cumulative sum, lambda* lies after the last bend below |rho|, and on that piece h is linear:
lambda* = (|rho| - gain of the coordinates full by then) / (sum of |w_i| r_i of the others).

L1: the linear programme is a fractional knapsack: a unit of |delta_i| buys |w_i| of gain, so
fill the coordinates in order of decreasing |w_i| up to their room; the last one needed is
filled in part.

If no point of the box reaches the hyperplane (|rho| > sum_i |w_i| m_i), delta goes as far
towards it as the box allows: the corner delta_i = sigma sign(w_i) m_i (the authors' code does
the same). Coordinates with w_i = 0 never move.

Choice: the paper and the authors' code find lambda* (L1: the last coordinate) by a bisection
over the sorted bends, log2(d) steps; here h is evaluated at every bend at once with cumulative
sums (one sort, O(d log d) as theirs), which is the same solution and shorter to read.
"""

from nnscratch.backend import get_array_module


def project_onto_hyperplane(t, w, b, norm):
    """delta (n, d) of least ``norm`` ("linf", "l2", "l1") with <w, t + delta> = b and t + delta
    in [0, 1]^d, per row (module docstring); t, w (n, d) with t in [0, 1], b (n,). t's dtype."""
    xp = get_array_module(t)
    rho = b - (w * t).sum(axis=1)                                       # (n,)
    sigma = xp.where(rho < 0, -1, 1).astype(t.dtype)
    need = abs(rho)
    size = abs(w)
    room = xp.where(sigma[:, None] * w > 0, 1 - t, t)                   # m_i
    if norm == "l1":
        step = fill_by_size(size, room, need)
    else:
        step = fill_by_radius(size, room, need, xp.ones_like(size) if norm == "linf" else size)
    return sigma[:, None] * xp.sign(w) * step


def fill_by_radius(size, room, need, rate):
    """|delta_i| = min(lambda* r_i, m_i) (n, d) for L-inf (rate r = 1) and L2 (r = |w|): the least
    lambda* whose gain sum_i |w_i| min(lambda r_i, m_i) is ``need`` (n,); size = |w| (n, d)."""
    xp = get_array_module(size)
    moving = rate > 0
    bend = xp.where(moving, room / xp.where(moving, rate, 1), xp.inf)   # lambda_i
    order = xp.argsort(bend, axis=1)
    bend = xp.take_along_axis(bend, order, axis=1)
    gain = xp.take_along_axis(size * room, order, axis=1)               # of a full coordinate
    slope = xp.take_along_axis(size * rate, order, axis=1)              # of one not yet full
    full_before = xp.cumsum(gain, axis=1) - gain                        # sum_{j<k} gain_j
    slope_from = xp.flip(xp.cumsum(xp.flip(slope, axis=1), axis=1), axis=1)   # sum_{j>=k}
    after = slope_from - slope
    h = full_before + gain + xp.where(after > 0, bend, 0) * after     # h at each bend
    k = (h < need[:, None]).sum(axis=1)                                  # the piece of lambda*
    reachable = k < size.shape[1]
    k = xp.minimum(k, size.shape[1] - 1)[:, None]
    full, free = (xp.take_along_axis(a, k, axis=1)[:, 0] for a in (full_before, slope_from))
    lam = xp.where(free > 0, (need - full) / xp.where(free > 0, free, 1), 0)
    return xp.where(reachable[:, None], xp.minimum(lam[:, None] * rate, room), room)


def fill_by_size(size, room, need):
    """|delta_i| (n, d) for L1: the coordinates by decreasing |w_i| = size (n, d) filled to their
    room m_i until the gain is ``need`` (n,), the last in part."""
    xp = get_array_module(size)
    order = xp.argsort(-size, axis=1)
    gain = xp.take_along_axis(size * room, order, axis=1)
    reach = xp.cumsum(gain, axis=1)                                     # gain of the first k+1
    k = (reach < need[:, None]).sum(axis=1, keepdims=True)               # the one filled in part
    rank = xp.argsort(order, axis=1)                                     # place of i in order
    last = xp.minimum(k, size.shape[1] - 1)
    short = need[:, None] - (xp.take_along_axis(reach - gain, last, axis=1))
    width = xp.take_along_axis(size, xp.take_along_axis(order, last, axis=1), axis=1)
    part = xp.where(width > 0, short / xp.where(width > 0, width, 1), 0)
    return xp.where(rank < k, room, xp.where(rank == k, xp.minimum(part, room), 0))
