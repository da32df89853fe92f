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
            description="-sin(r)/r + 0.01 r^2, r = |10 w| + 0.01: ripples on a plateau (gradient_descent_viz); "
            "start (1.5, 1.5), minimum (0, 0)",
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
