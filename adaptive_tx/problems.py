"""Two-dimensional test surfaces, shared by the ``adaptive-tx race`` command and the tests.

Each :class:`Problem` carries its function, a standard starting point, its known minima, a plotting window,
and learning rates under which each of the lecture's optimizers makes good progress from that start.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class Problem:
    """A 2-D surface to minimize.

    Attributes:
      name: the name the CLI takes.
      description: one line shown in ``adaptive-tx --help``.
      fn: ``f(w) -> scalar`` for ``w`` of shape ``(2,)``.
      start: the standard starting point.
      minima: the known global minima; empty when the surface is unbounded below.
      target: a run has "reached" the goal at the first step with ``f(w) <= target``.
      window: ``((x_min, x_max), (y_min, y_max))`` for contour plots.
      learning_rates: a learning rate per optimizer name that suits this surface from ``start``.
    """

    name: str
    description: str
    fn: Callable[[jax.Array], jax.Array]
    start: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    target: float
    window: tuple[tuple[float, float], tuple[float, float]]
    learning_rates: Mapping[str, float]

    def distance_to_minimum(self, w: jax.Array) -> float:
        """Euclidean distance from ``w`` to the nearest known minimum (``inf`` when there is none)."""
        if not self.minima:
            return float("inf")
        return float(np.min(np.linalg.norm(np.asarray(self.minima) - np.asarray(w)[None, :], axis=-1)))


def _rosenbrock(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def _beale(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def _saddle(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return x**2 - y**2


def _quadratic(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    return 0.1 * x**2 + 2 * y**2


# Lili Jiang's gradient_descent_viz surfaces (the "horse races" of her post on Momentum, AdaGrad, RMSprop and
# Adam), written in (x, y) for the program's (x, z), on its domain [-2, 2]^2 and from its start (1.5, 1.5).
# Each is shifted by a constant so that its minimum on the domain is 0, as on the surfaces above: a constant
# changes no gradient, so the paths are the program's, and the race's log-spaced contours and f <= 1e-4 goal
# apply unchanged. The minima were found in float64 on a 4001 x 4001 grid of [-2, 2]^2, then polished by
# Newton's method on the exact gradient and Hessian (jax.hessian, x64) to a gradient below 1e-14; the
# constants are f there, to 16 digits (tests/test_problems.py repeats the search with NumPy).


def _lilipads_wells(x: jax.Array, y: jax.Array, sign: float) -> jax.Array:
    # Two Gaussian wells (sign -1) or hills (sign +1) at (+-1, 0), over the bowl x^2 + z^2, with z = 1.4 y.
    z = 1.4 * y
    return sign * (2 * jnp.exp(-((x - 1) ** 2 + z**2) / 0.2) + 6 * jnp.exp(-((x + 1) ** 2 + z**2) / 0.2)) + x**2 + z**2


_LOCAL_MINIMUM_MIN = (-0.9675774464554597, 0.0)  # The deeper well; the shallower one, at (0.905318, 0), is f = 3.94.
_LOCAL_MINIMUM_FLOOR = -5.032339968658435


def _local_minimum(w: jax.Array) -> jax.Array:
    return _lilipads_wells(w[0], w[1], -1.0) - _LOCAL_MINIMUM_FLOOR


def _saddle_point(w: jax.Array) -> jax.Array:
    # Minimum -1 at (-pi/2, 0) on the domain (and at every -pi/2 + 2 pi k): a closed form.
    return jnp.sin(w[0]) + w[1] ** 2 + 1


def _ecliptic_bowl(w: jax.Array) -> jax.Array:
    # Minimum -1 at the origin: both terms are smallest there.
    x, y = w[0] / 2, w[1] / 2
    return -jnp.exp(-(x**2 + 5 * y**2)) + x**2 + 0.5 * y**2 + 1


_HILLS_MIN = (0.9003065222993073, -0.6534011583039486)  # The one well; a local minimum near (0.04, 0) is f = 0.207.
_HILLS_FLOOR = -0.15880861003441482


def _hills(w: jax.Array) -> jax.Array:
    x, y = w[0], w[1]
    well = 2 * jnp.exp(-((x - 1) ** 2 + (1.4 * y + 1) ** 2) / 0.2)
    return _lilipads_wells(x, y, 1.0) - well - _HILLS_FLOOR


# The plateau's minimum is the origin, where r = 0.01: -sin(r) / r rises and 0.01 r^2 rises with r. The
# radius is a cone there, so f has a kink: its gradient near 0 has the constant size 10 f'(0.01) = 0.035 and
# points away from it; at the origin itself jax.grad gives 0, the subgradient that makes it a minimum.
_PLATEAU_FLOOR = -math.sin(0.01) / 0.01 + 0.01 * 0.01**2


def _plateau(w: jax.Array) -> jax.Array:
    x, y = 10 * w[0], 10 * w[1]
    s = x**2 + y**2
    positive = s > 0
    r = jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1)), 0) + 0.01  # sqrt'(0) is inf: 0 there.
    return -jnp.sin(r) / r + 0.01 * r**2 - _PLATEAU_FLOOR


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        Problem(
            name="rosenbrock",
            description="(1-x)^2 + 100 (y-x^2)^2: a curved, narrow valley; start (-1.2, 1), minimum (1, 1)",
            fn=_rosenbrock,
            start=(-1.2, 1.0),
            minima=((1.0, 1.0),),
            target=1e-4,
            window=((-2.0, 2.0), (-1.0, 3.0)),
            learning_rates={"adagrad": 1.0, "rmsprop": 0.003, "adadelta": 1.0, "momentum": 0.02, "adam": 0.1},
        ),
        Problem(
            name="beale",
            description="Beale's function: flat plateaus and steep walls; start (1, 1.5), minimum (3, 0.5)",
            fn=_beale,
            start=(1.0, 1.5),
            minima=((3.0, 0.5),),
            target=1e-4,
            window=((-4.5, 4.5), (-4.5, 4.5)),
            learning_rates={"adagrad": 1.0, "rmsprop": 0.003, "adadelta": 1.0, "momentum": 0.02, "adam": 0.1},
        ),
        Problem(
            name="himmelblau",
            description="Himmelblau's function: four minima; start (0, 0)",
            fn=_himmelblau,
            start=(0.0, 0.0),
            minima=((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
            target=1e-4,
            window=((-5.0, 5.0), (-5.0, 5.0)),
            learning_rates={
                "adagrad": 0.5,
                "rmsprop": 0.05,
                "adadelta": 10.0,
                "momentum": 0.01,
                "adam": 0.05,
            },
        ),
        Problem(
            name="saddle",
            description="x^2 - y^2: a saddle at the origin, unbounded below; start (1, 1e-3); goal f <= -1",
            fn=_saddle,
            start=(1.0, 1e-3),
            minima=(),
            target=-1.0,
            window=((-1.5, 1.5), (-1.5, 1.5)),
            learning_rates={"adagrad": 0.1, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.01, "adam": 0.01},
        ),
        Problem(
            name="quadratic",
            description="0.1 x^2 + 2 y^2: an ill-conditioned bowl (d2l); start (-5, -2), minimum (0, 0)",
            fn=_quadratic,
            start=(-5.0, -2.0),
            minima=((0.0, 0.0),),
            target=1e-4,
            window=((-5.5, 1.0), (-3.0, 3.0)),
            learning_rates={"adagrad": 2.0, "rmsprop": 0.05, "adadelta": 1.0, "momentum": 0.1, "adam": 0.1},
        ),
        Problem(
            name="local_minimum",
            description="two Gaussian wells in a bowl (gradient_descent_viz); start (1.5, 1.5), minimum (-0.97, 0), "
            "a shallower well at (0.91, 0)",
            fn=_local_minimum,
            start=(1.5, 1.5),
            minima=(_LOCAL_MINIMUM_MIN,),
            target=1e-4,
            window=((-2.0, 2.0), (-2.0, 2.0)),
            learning_rates={"adagrad": 0.1, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.1, "adam": 0.1},
        ),
        Problem(
            name="saddle_point",
            description="sin(x) + y^2 (gradient_descent_viz); start (1.5, 1.5) near the ridge x = pi/2, "
            "minimum (-pi/2, 0)",
            fn=_saddle_point,
            start=(1.5, 1.5),
            minima=((-math.pi / 2, 0.0),),
            target=1e-4,
            window=((-2.0, 2.0), (-2.0, 2.0)),
            learning_rates={"adagrad": 0.3, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.1, "adam": 0.1},
        ),
        Problem(
            name="ecliptic_bowl",
            description="a wide elliptic bowl with a Gaussian dip (gradient_descent_viz); start (1.5, 1.5), "
            "minimum (0, 0)",
            fn=_ecliptic_bowl,
            start=(1.5, 1.5),
            minima=((0.0, 0.0),),
            target=1e-4,
            window=((-2.0, 2.0), (-2.0, 2.0)),
            learning_rates={"adagrad": 0.3, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.1, "adam": 0.1},
        ),
        Problem(
            name="hills",
            description="two hills and a well in a bowl (gradient_descent_viz); start (1.5, 1.5), "
            "minimum (0.90, -0.65), a local one at (0.04, 0)",
            fn=_hills,
            start=(1.5, 1.5),
            minima=(_HILLS_MIN,),
            target=1e-4,
            window=((-2.0, 2.0), (-2.0, 2.0)),
            learning_rates={"adagrad": 0.3, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.03, "adam": 0.03},
        ),
        Problem(
            name="plateau",
            description="-sin(r)/r + 0.01 r^2, r = 10 sqrt(x^2 + y^2) + 0.01: ripples on a plateau "
            "(gradient_descent_viz); start (1.5, 1.5), minimum (0, 0)",
            fn=_plateau,
            start=(1.5, 1.5),
            minima=((0.0, 0.0),),
            target=1e-4,
            window=((-2.0, 2.0), (-2.0, 2.0)),
            learning_rates={"adagrad": 0.1, "rmsprop": 0.01, "adadelta": 1.0, "momentum": 0.1, "adam": 0.1},
        ),
    )
}


def trajectory(problem: Problem, tx: optax.GradientTransformation, steps: int) -> jax.Array:
    """The points ``w_0 .. w_steps`` that ``tx`` visits from ``problem.start``, shape ``(steps + 1, 2)``.

    Runs as one jitted ``lax.scan``; float32.
    """
    grad = jax.grad(problem.fn)

    @jax.jit
    def run(w0):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(grad(w), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), w

        _, ws = jax.lax.scan(step, (w0, tx.init(w0)), length=steps)
        return jnp.concatenate([w0[None], ws])

    return run(jnp.asarray(problem.start, jnp.float32))


# ----------------------------------------------------------------------------- Wilson et al. 2017, section 3.3
# A least-squares problem on which AdaGrad, RMSprop and Adam, run full batch from w_0 = 0, find a solution
# that labels every fresh test point +1, while gradient descent finds the minimum-norm solution, which labels
# them all correctly.


def separable_least_squares(n: int = 50, p: float = 0.6, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""Wilson et al.'s separable least-squares problem :math:`\min_w \|Xw - y\|^2` (section 3.3).

    Each label is :math:`y_i = +1` with probability :math:`p > 1/2`, else :math:`-1`. Sample :math:`i` has
    three shared features, :math:`x_{i1} = y_i` (the only one that generalizes) and :math:`x_{i2} = x_{i3} = 1`,
    then features of its own that no other sample has: one column equal to 1 if :math:`y_i = +1`, five if
    :math:`y_i = -1`. All other entries are 0, and the columns that are 0 for every sample are dropped, so
    ``X`` has :math:`3 + n_+ + 5 n_-` columns, more than its :math:`n` rows.

    The construction needs :math:`b = \sum_i y_i > 0` (more positives than negatives). Then
    :math:`u = X^\top y` has no zero entry and :math:`X \operatorname{sign}(u) = 4y`, the condition of the
    paper's lemma (section 3) under which AdaGrad, RMSprop and Adam from :math:`w_0 = 0` converge to
    :math:`w = \operatorname{sign}(u)/4`. Gradient descent from :math:`w_0 = 0` stays in the row space of
    :math:`X` and converges to the minimum-norm solution :math:`X^+ y` instead. Evaluate both on
    :func:`separable_test_set` with :func:`classification_error`.

    Args:
      n: the number of samples (rows), at least 1.
      p: the probability :math:`p` of a positive label, in :math:`(1/2, 1]`.
      seed: seeds ``numpy.random.default_rng``; the labels are ``rng.random(n) < p``.

    Returns:
      ``(X, y)``: float64 arrays of shapes ``(n, 3 + n_+ + 5 n_-)`` and ``(n,)``, with ``y`` in :math:`\{-1, +1\}`.

    Raises:
      ValueError: if ``n < 1`` or ``p`` is outside :math:`(1/2, 1]`, or if the ``seed`` draws no more positives
        than negatives (:math:`b \le 0`), where the construction does not apply (pick another ``seed``, a
        larger ``p`` or a larger ``n``).

    Examples:
      >>> import numpy as np
      >>> from adaptive_tx.problems import separable_least_squares
      >>> X, y = separable_least_squares(n=50, p=0.6, seed=0)
      >>> print(X.shape, int((y > 0).sum()), int((y < 0).sum()))
      (50, 149) 26 24
      >>> print(X[:, :3].T @ y, np.unique(X @ np.sign(X.T @ y) / y))  # u_1 = n, u_2 = u_3 = b; c = 4.
      [50.  2.  2.] [4.]

    References:
      Wilson, Roelofs, Stern, Srebro & Recht, *The Marginal Value of Adaptive Gradient Methods in Machine
      Learning*, NeurIPS 2017, section 3.3 (`arXiv:1705.08292 <https://arxiv.org/abs/1705.08292>`_).
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}.")
    if not 0.5 < p <= 1.0:
        raise ValueError(f"p must be in (0.5, 1], got {p!r}.")
    y = np.where(np.random.default_rng(seed).random(n) < p, 1.0, -1.0)
    n_pos, n_neg = int(np.sum(y > 0)), int(np.sum(y < 0))
    if n_pos <= n_neg:
        raise ValueError(
            f"seed={seed!r} draws {n_pos} positive and {n_neg} negative labels for n={n}, p={p}: the construction "
            "needs b = sum(y) > 0 (more positives than negatives). Pick another seed, a larger p or a larger n."
        )
    x = np.zeros((n, 3 + 5 * n))
    x[:, 0], x[:, 1:3] = y, 1.0
    for i, label in enumerate(y):
        own = 1 if label > 0 else 5  # Columns 4 + 5(i-1) .. 4 + 5(i-1) + 2(1 - y_i), 1-based.
        x[i, 3 + 5 * i : 3 + 5 * i + own] = 1.0
    return x[:, np.any(x != 0, axis=0)], y


def separable_test_set(n_test: int = 100_000, p: float = 0.6, *, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    r"""Fresh test points for :func:`separable_least_squares`: their three shared features and their labels.

    A test point has :math:`x_1 = y`, :math:`x_2 = x_3 = 1`, and features of its own on fresh columns that no
    training sample has. Training from :math:`w_0 = 0` never moves the weights of those columns (their
    gradient is 0), so they stay 0 and :math:`\langle w, x \rangle = w_1 y + w_2 + w_3`: only the three shared
    features are returned.

    Args:
      n_test: the number of test points.
      p: the probability of a positive label, as in training.
      seed: seeds ``numpy.random.default_rng``; labels are ``rng.random(n_test) < p``. Keep it apart from the
        training seed so the test labels are a fresh draw.

    Returns:
      ``(x, y)``: float64 arrays of shapes ``(n_test, 3)`` (columns :math:`y, 1, 1`) and ``(n_test,)``.

    Examples:
      >>> from adaptive_tx.problems import separable_test_set
      >>> x, y = separable_test_set(n_test=4, p=0.6, seed=1)
      >>> print(x, y)
      [[ 1.  1.  1.]
       [-1.  1.  1.]
       [ 1.  1.  1.]
       [-1.  1.  1.]] [ 1. -1.  1. -1.]

    References:
      Wilson et al. 2017, section 3.3 (`arXiv:1705.08292 <https://arxiv.org/abs/1705.08292>`_).
    """
    if isinstance(n_test, bool) or not isinstance(n_test, int | np.integer) or n_test < 1:
        raise ValueError(f"n_test must be an integer >= 1, got {n_test!r}.")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}.")
    y = np.where(np.random.default_rng(seed).random(n_test) < p, 1.0, -1.0)
    return np.stack([y, np.ones_like(y), np.ones_like(y)], axis=1), y


def classification_error(w: jax.Array | np.ndarray, x: jax.Array | np.ndarray, y: jax.Array | np.ndarray) -> float:
    r"""The share of rows that :math:`w` labels wrongly: :math:`\operatorname{sign}\langle w, x_i \rangle \ne y_i`.

    A score of exactly 0 counts as wrong. ``x`` may have fewer columns than ``w`` has entries, as the test
    points of :func:`separable_test_set` do (their other features meet weights that are 0): then only
    ``w[:x.shape[1]]`` is used.

    Args:
      w: the weights, shape ``(d,)``.
      x: the points, shape ``(m, k)`` with ``k <= d``.
      y: their labels in :math:`\{-1, +1\}`, shape ``(m,)``.

    Returns:
      The error rate, a float in :math:`[0, 1]`.

    Examples:
      >>> import numpy as np
      >>> from adaptive_tx.problems import classification_error, separable_least_squares, separable_test_set
      >>> X, y = separable_least_squares(n=50, p=0.6, seed=0)
      >>> x_test, y_test = separable_test_set(n_test=100_000, p=0.6, seed=1)
      >>> w_gd = np.linalg.pinv(X) @ y  # Where gradient descent from 0 converges.
      >>> w_adaptive = np.sign(X.T @ y) / 4  # Where AdaGrad, RMSprop and Adam from 0 converge.
      >>> # Every test point is labelled +1, so the error is the share of negatives, about 1 - p.
      >>> print(classification_error(w_gd, X, y), classification_error(w_gd, x_test, y_test))
      0.0 0.0
      >>> print(classification_error(w_adaptive, X, y), f"{classification_error(w_adaptive, x_test, y_test):.4f}")
      0.0 0.3996

    References:
      Wilson et al. 2017, section 3.3 (`arXiv:1705.08292 <https://arxiv.org/abs/1705.08292>`_).
    """
    w, x, y = np.asarray(w), np.asarray(x), np.asarray(y)
    if x.ndim != 2 or w.ndim != 1 or x.shape[1] > w.shape[0] or y.shape != x.shape[:1]:
        raise ValueError(f"need w (d,), x (m, k <= d) and y (m,); got {w.shape}, {x.shape} and {y.shape}.")
    return float(np.mean(np.sign(x @ w[: x.shape[1]]) != y))
