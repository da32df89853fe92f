"""The one registry of optimizers under test, and the float64 NumPy oracles of the lecture's equations.

Every property test runs over ``OPTIMIZERS``; what differs between optimizers (hyperparameters for each
problem, which arguments are accumulators) lives on the ``Case``, never as name lists inside tests.

The oracles are independent transcriptions of ../shared/DESIGN.md "The equations" in float64 NumPy, one
leaf at a time: they share no code with ``adaptive_tx``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx

# ----------------------------------------------------------------------------- float64 NumPy oracles
# Each oracle is (init(w, **hp) -> state, step(g, state, **hp) -> (update, state)), per leaf, where the
# update is what gets *added* to w: w_t = w_{t-1} + update.


def _adagrad_init(w, initial_accumulator=0.0, **_):
    return {"s": np.full_like(w, initial_accumulator)}


def _adagrad_step(g, st, learning_rate, eps=1e-8, **_):
    s = st["s"] + g**2
    return -learning_rate / np.sqrt(s + eps) * g, {"s": s}


def _rmsprop_init(w, initial_scale=0.0, **_):
    return {"s": np.full_like(w, initial_scale)}


def _rmsprop_step(g, st, learning_rate, decay=0.9, eps=1e-8, **_):
    s = decay * st["s"] + (1 - decay) * g**2
    return -learning_rate / np.sqrt(s + eps) * g, {"s": s}


def _adadelta_init(w, initial_scale=0.0, initial_delta=0.0, **_):
    return {"s": np.full_like(w, initial_scale), "dw": np.full_like(w, initial_delta)}


def _adadelta_step(g, st, learning_rate=1.0, rho=0.9, eps=1e-6, **_):
    s = rho * st["s"] + (1 - rho) * g**2
    g_prime = np.sqrt(st["dw"] + eps) / np.sqrt(s + eps) * g
    dw = rho * st["dw"] + (1 - rho) * g_prime**2
    return -learning_rate * g_prime, {"s": s, "dw": dw}


def _momentum_init(w, **_):
    return {"v": np.zeros_like(w)}


def _momentum_step(g, st, learning_rate, beta=0.9, dampening=None, nesterov=False, **_):
    d = beta if dampening is None else dampening
    v = beta * st["v"] + (1 - d) * g
    direction = beta * v + (1 - d) * g if nesterov else v
    return -learning_rate * direction, {"v": v}


def _adam_init(w, initial_mu=0.0, initial_nu=0.0, **_):
    return {"t": 0, "v": np.full_like(w, initial_mu), "s": np.full_like(w, initial_nu)}


def _adam_step(g, st, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, **_):
    t = st["t"] + 1
    v = b1 * st["v"] + (1 - b1) * g
    s = b2 * st["s"] + (1 - b2) * g**2
    v_hat = v / (1 - b1**t)
    s_hat = s / (1 - b2**t)
    return -learning_rate / (np.sqrt(s_hat + eps_root) + eps) * v_hat, {"t": t, "v": v, "s": s}


# ----------------------------------------------------------------------------- the registry


@dataclasses.dataclass(frozen=True)
class Case:
    """One optimizer under test.

    Attributes:
      name: the public name, ``getattr(atx, name)`` is the optimizer.
      block: the building block ``scale_by_*`` (no learning rate, no sign).
      oracle: (init, step) float64 NumPy transcription of the equation.
      defaults: the optimizer's kwargs for the defaults test: a learning rate where it has no default.
      unusual: sets of hyperparameters far from the defaults that together change every term of the
        equation (eps 0.1, non-zero initial values, other decays, each flag).
      ranges: (low, high) of each hyperparameter but the learning rate, for property-based tests.
      without_eps: kwargs that set eps to 0 (with whatever else that needs); empty where there is no eps.
      parabola: optimizer kwargs for convergence on the parabola.
      rosenbrock: optimizer kwargs for convergence on Rosenbrock (10,000 steps).
    """

    name: str
    block: Callable[..., optax.GradientTransformation]
    oracle: tuple[Callable[..., Any], Callable[..., Any]]
    defaults: Mapping[str, Any]
    unusual: tuple[Mapping[str, Any], ...]
    ranges: Mapping[str, tuple[float, float]]
    without_eps: Mapping[str, Any]
    parabola: Mapping[str, Any]
    rosenbrock: Mapping[str, Any]

    @property
    def optimizer(self) -> Callable[..., optax.GradientTransformation]:
        return getattr(atx, self.name)

    def __str__(self) -> str:  # pytest ids
        return self.name


ROSENBROCK_STEPS = 10_000

OPTIMIZERS = [
    Case(
        name="adagrad",
        block=atx.scale_by_adagrad,
        oracle=(_adagrad_init, _adagrad_step),
        ranges={"eps": (1e-8, 1.0), "initial_accumulator": (0.0, 2.0)},
        without_eps={"eps": 0.0},
        defaults={"learning_rate": 0.1},
        unusual=({"learning_rate": 0.3, "eps": 0.1, "initial_accumulator": 0.5},),
        parabola={"learning_rate": 1.0},
        rosenbrock={"learning_rate": 0.5},
    ),
    Case(
        name="rmsprop",
        block=atx.scale_by_rms,
        oracle=(_rmsprop_init, _rmsprop_step),
        ranges={"decay": (0.0, 0.999), "eps": (1e-8, 1.0), "initial_scale": (0.0, 2.0)},
        without_eps={"eps": 0.0},
        defaults={"learning_rate": 0.1},
        unusual=({"learning_rate": 0.05, "decay": 0.5, "eps": 0.1, "initial_scale": 2.0},),
        parabola={"learning_rate": 0.01},
        # Without bias correction or annealing, RMSprop at a constant rate circles the minimum at a radius
        # that shrinks with the rate; 1e-3 lands inside the tolerance.
        rosenbrock={"learning_rate": 0.001},
    ),
    Case(
        name="adadelta",
        block=atx.scale_by_adadelta,
        oracle=(_adadelta_init, _adadelta_step),
        ranges={"rho": (0.0, 0.999), "eps": (1e-8, 1.0), "initial_scale": (0.0, 2.0), "initial_delta": (0.0, 1.0)},
        without_eps={"eps": 0.0, "initial_delta": 1e-4},
        defaults={},
        unusual=(
            {"learning_rate": 0.7, "rho": 0.5, "eps": 0.1, "initial_scale": 0.3, "initial_delta": 0.2},
            {"eps": 0.0, "initial_delta": 1e-4},  # eps = 0 is allowed once initial_delta > 0.
        ),
        parabola={"learning_rate": 1.0, "eps": 1e-4},
        # Adadelta's steps do not shrink in Rosenbrock's valley (its step size tracks its own past steps),
        # so at any constant rate it oscillates; an annealed learning rate, which the API accepts as a
        # schedule, converges (measured: loss 1.4e-9 after 10,000 steps).
        rosenbrock={"learning_rate": optax.exponential_decay(1.0, ROSENBROCK_STEPS, 1e-3)},
    ),
    Case(
        name="momentum",
        block=atx.scale_by_momentum,
        oracle=(_momentum_init, _momentum_step),
        ranges={"beta": (0.0, 0.999), "dampening": (0.0, 0.999)},
        without_eps={},
        defaults={"learning_rate": 0.1},
        unusual=(
            {"learning_rate": 0.2, "beta": 0.5, "dampening": 0.25, "nesterov": True},
            {"learning_rate": 0.05, "dampening": 0.0},  # Heavy ball.
            {"learning_rate": 0.05, "dampening": 0.0, "nesterov": True},  # PyTorch's Nesterov form.
            {"learning_rate": 0.3, "beta": 0.0},  # Plain gradient descent.
        ),
        parabola={"learning_rate": 0.1},
        rosenbrock={"learning_rate": 0.002},
    ),
    Case(
        name="adam",
        block=atx.scale_by_adam,
        oracle=(_adam_init, _adam_step),
        ranges={
            "b1": (0.0, 0.999),
            "b2": (0.0, 0.999),
            "eps": (1e-8, 1.0),
            "eps_root": (0.0, 1.0),
            "initial_mu": (-1.0, 1.0),
            "initial_nu": (0.0, 2.0),
        },
        without_eps={"eps": 0.0},
        defaults={"learning_rate": 0.1},
        unusual=(
            {
                "learning_rate": 0.05,
                "b1": 0.5,
                "b2": 0.8,
                "eps": 0.1,
                "eps_root": 0.01,
                "initial_mu": -0.3,
                "initial_nu": 0.4,
            },
            {"learning_rate": 0.01, "b1": 0.0, "b2": 0.0},  # No memory at all: sign-like steps.
        ),
        parabola={"learning_rate": 0.1},
        rosenbrock={"learning_rate": 0.05},
    ),
]


def block_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of an optimizer's kwargs that its building block takes (all but the rate)."""
    return {k: v for k, v in kwargs.items() if k != "learning_rate"}


def oracle_run(case: Case, kwargs: Mapping[str, Any], params: Any, grad_fn: Callable, steps: int) -> list:
    """The oracle's parameter trajectory ``[w_1, ..., w_steps]`` (pytrees of float64 NumPy arrays)."""
    init, step = case.oracle
    leaves, treedef = jax.tree.flatten(params)
    leaves = [np.asarray(x, np.float64) for x in leaves]
    states = [init(w, **kwargs) for w in leaves]
    out = []
    for t in range(steps):
        grads = treedef.flatten_up_to(grad_fn(treedef.unflatten(leaves), t))
        new = [step(np.asarray(g), st, **kwargs) for g, st in zip(grads, states, strict=True)]
        leaves = [w + u for w, (u, _) in zip(leaves, new, strict=True)]
        states = [st for _, st in new]
        out.append(treedef.unflatten(leaves))
    return out


def nested_params(dtype: Any = jnp.float32) -> dict[str, Any]:
    """A nested pytree: dicts, a tuple, a scalar leaf, a matrix and a vector."""
    return {
        "layer": {
            "w": jnp.arange(6, dtype=dtype).reshape(2, 3) / 5 - 0.5,
            "b": jnp.array([0.3, -0.2], dtype),
        },
        "scalars": (jnp.asarray(1.5, dtype), jnp.array([-2.0, 0.7, 0.1], dtype)),
    }


def run_steps(tx: optax.GradientTransformation, params: Any, grad_fn: Callable, steps: int) -> tuple:
    """``steps`` jitted steps of ``tx`` on ``grad_fn(params, t)``; returns (trajectory list, final state)."""

    @jax.jit
    def step(params, state, t):
        updates, state = tx.update(grad_fn(params, t), state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    out = []
    for t in range(steps):
        params, state = step(params, state, t)
        out.append(params)
    return out, state


def max_relative_error(actual: Any, expected: Any) -> float:
    """max over leaves of max|actual - expected| / max|expected| (normwise, so a coordinate crossing zero
    does not turn a 1e-17 absolute difference into a large relative one)."""
    errors = jax.tree.map(
        lambda a, e: float(np.max(np.abs(np.asarray(a, np.float64) - e)) / max(np.max(np.abs(e)), 1e-300)),
        actual,
        expected,
    )
    return max(jax.tree.leaves(errors))
