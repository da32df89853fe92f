"""Two-dimensional test surfaces, shared by the ``adaptive-tx race`` command and the tests.

Each :class:`Problem` carries its function, a standard starting point, its known minima, a plotting window,
and learning rates under which each of the lecture's optimizers makes good progress from that start.
"""

from __future__ import annotations

import dataclasses
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
