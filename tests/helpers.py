"""The one registry of transformations under test, and the float64 NumPy oracles of the lecture's equations.

``REGISTRY`` holds every public transformation: the five optimizers, each building block with each knob
setting, NAdam, ``bias_correction``, ``diagnostics.track``, ``packed`` and the fourteen compat functions.
Every property test runs over it; what differs between entries (hyperparameters and their ranges, which ones
are decays, how eps is set to 0, whether complex params make sense) lives on the ``Entry``, never as name
lists inside tests.
The five optimizers' entries also carry their oracles, their defaults and the problems they are known to
solve; the selectors at the end (``with_oracle``, ``with_defaults``, ...) pick the entries a test needs.

The oracles are independent transcriptions of the lecture's equations (docs/optimizers.md)
in float64 (or complex128) NumPy, one leaf at a time: they share no code with ``adaptive_tx``. Squares are
``|g|^2``, so the same oracles serve complex parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import types
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
import adaptive_tx.compat.keras as kt
import adaptive_tx.compat.torch as tt
from adaptive_tx.diagnostics import track

# ----------------------------------------------------------------------------- float64 NumPy oracles
# Each oracle is (init(w, **hp) -> state, step(g, state, **hp) -> (update, state)), per leaf, where the
# update is what gets *added* to w: w_t = w_{t-1} + update.


def _adagrad_init(w, initial_accumulator=0.0, **_):
    return {"s": np.full(np.shape(w), initial_accumulator)}


def _adagrad_step(g, st, learning_rate, eps=1e-8, **_):
    s = st["s"] + np.abs(g) ** 2
    return -learning_rate / np.sqrt(s + eps) * g, {"s": s}


def _rmsprop_init(w, initial_scale=0.0, **_):
    return {"s": np.full(np.shape(w), initial_scale)}


def _rmsprop_step(g, st, learning_rate, decay=0.9, eps=1e-8, **_):
    s = decay * st["s"] + (1 - decay) * np.abs(g) ** 2
    return -learning_rate / np.sqrt(s + eps) * g, {"s": s}


def _adadelta_init(w, initial_scale=0.0, initial_delta=0.0, **_):
    return {"s": np.full(np.shape(w), initial_scale), "dw": np.full(np.shape(w), initial_delta)}


def _adadelta_step(g, st, learning_rate=1.0, rho=0.9, eps=1e-6, **_):
    s = rho * st["s"] + (1 - rho) * np.abs(g) ** 2
    g_prime = np.sqrt(st["dw"] + eps) / np.sqrt(s + eps) * g
    dw = rho * st["dw"] + (1 - rho) * np.abs(g_prime) ** 2
    return -learning_rate * g_prime, {"s": s, "dw": dw}


def _momentum_init(w, **_):
    return {"v": np.zeros_like(w)}


def _momentum_step(g, st, learning_rate, beta=0.9, dampening=None, nesterov=False, **_):
    d = beta if dampening is None else dampening
    v = beta * st["v"] + (1 - d) * g
    direction = beta * v + (1 - d) * g if nesterov else v
    return -learning_rate * direction, {"v": v}


def _adam_init(w, initial_mu=0.0, initial_nu=0.0, **_):
    return {"t": 0, "v": np.full_like(w, initial_mu), "s": np.full(np.shape(w), initial_nu)}


def _adam_step(g, st, learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, **_):
    t = st["t"] + 1
    v = b1 * st["v"] + (1 - b1) * g
    s = b2 * st["s"] + (1 - b2) * np.abs(g) ** 2
    v_hat = v / (1 - b1**t)
    s_hat = s / (1 - b2**t)
    return -learning_rate / (np.sqrt(s_hat + eps_root) + eps) * v_hat, {"t": t, "v": v, "s": s}


class Oracle(NamedTuple):
    """A float64 transcription of one optimizer's equation, per leaf (see the functions above)."""

    init: Callable[..., Any]
    step: Callable[..., Any]


ADAGRAD_ORACLE = Oracle(_adagrad_init, _adagrad_step)
RMSPROP_ORACLE = Oracle(_rmsprop_init, _rmsprop_step)
ADADELTA_ORACLE = Oracle(_adadelta_init, _adadelta_step)
MOMENTUM_ORACLE = Oracle(_momentum_init, _momentum_step)
ADAM_ORACLE = Oracle(_adam_init, _adam_step)


# ----------------------------------------------------------------------------- helpers


def block_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters of an optimizer's kwargs that its building block takes (all but the rate)."""
    return {k: v for k, v in kwargs.items() if k != "learning_rate"}


def oracle_run(oracle: Oracle, kwargs: Mapping[str, Any], params: Any, grad_fn: Callable, steps: int) -> list:
    """The oracle's parameter trajectory ``[w_1, ..., w_steps]`` (pytrees of float64 NumPy arrays)."""
    leaves, treedef = jax.tree.flatten(params)
    leaves = [np.asarray(x, np.complex128 if np.iscomplexobj(x) else np.float64) for x in leaves]
    states = [oracle.init(w, **kwargs) for w in leaves]
    out = []
    for t in range(steps):
        grads = treedef.flatten_up_to(grad_fn(treedef.unflatten(leaves), t))
        new = [oracle.step(np.asarray(g), st, **kwargs) for g, st in zip(grads, states, strict=True)]
        leaves = [w + u for w, (u, _) in zip(leaves, new, strict=True)]
        states = [st for _, st in new]
        out.append(treedef.unflatten(leaves))
    return out


def grad(params: Any, t: Any) -> Any:
    """The tests' gradient at step ``t``: ``w - 1 + (t + 1) / 10`` per leaf, in the leaf's dtype.

    The gradient of ``sum((w - 1)^2 / 2)``, shifted by ``(t + 1) / 10`` so that every step, the first
    included, sees a new gradient. Deterministic, jittable (``t`` may be traced), for any float or complex
    dtype, 16-bit ones too. Its values are those the registry tests' tolerances were measured with.
    """
    return jax.tree.map(lambda w: w - 1 + jnp.asarray(t + 1, w.dtype) / 10, params)


def nested_params(dtype: Any = jnp.float32) -> dict[str, Any]:
    """A nested pytree: dicts, a tuple, a scalar leaf, a matrix and a vector."""
    return {
        "layer": {
            "w": jnp.arange(6, dtype=dtype).reshape(2, 3) / 5 - 0.5,
            "b": jnp.array([0.3, -0.2], dtype),
        },
        "scalars": (jnp.asarray(1.5, dtype), jnp.array([-2.0, 0.7, 0.1], dtype)),
    }


def jitted_step(tx: optax.GradientTransformation, grad_fn: Callable) -> Callable:
    """One jitted training step of ``tx`` on ``grad_fn(params, t)``: ``(params, state, t) -> (params, state)``."""

    @jax.jit
    def step(params, state, t):
        updates, state = tx.update(grad_fn(params, t), state, params)
        return optax.apply_updates(params, updates), state

    return step


def run_steps(tx: optax.GradientTransformation, params: Any, grad_fn: Callable, steps: int) -> tuple:
    """``steps`` jitted steps of ``tx`` on ``grad_fn(params, t)``; returns (trajectory list, final state)."""
    step = jitted_step(tx, grad_fn)
    state = tx.init(params)
    out = []
    for t in range(steps):
        params, state = step(params, state, t)
        out.append(params)
    return out, state


def scan_steps(tx: optax.GradientTransformation, grad: Callable, w0: Any, steps: int) -> tuple:
    """``steps`` steps of ``tx`` on ``grad(w)`` from ``w0`` as one jitted ``lax.scan``; returns (w, state)."""

    @jax.jit
    def run(w0):
        def step(carry, _):
            w, state = carry
            updates, state = tx.update(grad(w), state, w)
            return (optax.apply_updates(w, updates), state), None

        return jax.lax.scan(step, (w0, tx.init(w0)), length=steps)[0]

    return run(w0)


def module_from_file(path: Any, name: str) -> types.ModuleType:
    """The Python file at ``path`` (an example script, docs/conf.py) as a module named ``name``; its
    ``if __name__ == "__main__"`` block does not run."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def max_relative_error(actual: Any, expected: Any) -> float:
    """max over leaves of max|actual - expected| / max|expected| (normwise, so a coordinate crossing zero
    does not turn a 1e-17 absolute difference into a large relative one)."""
    errors = jax.tree.map(
        lambda a, e: float(
            np.max(np.abs(np.asarray(a, np.complex128 if np.iscomplexobj(a) else np.float64) - e))
            / max(np.max(np.abs(e)), 1e-300)
        ),
        actual,
        expected,
    )
    return max(jax.tree.leaves(errors))


# ----------------------------------------------------------------------------- the registry of every transformation


# The range each numeric hyperparameter is drawn from in property-based tests (tests/test_properties.py),
# by argument name: one name means one kind of number across the factories. An entry narrows a range where
# its factory refuses part of it (``Entry.ranges``).
_RATE, _DECAY, _EPS, _CLIP = (1e-4, 1.0), (0.0, 0.999), (1e-8, 1.0), (0.1, 10.0)
RANGES: Mapping[str, tuple[float, float]] = {
    "learning_rate": _RATE,
    "lr": _RATE,
    "lr_decay": (1e-3, 1.0),
    "b1": _DECAY,
    "b2": _DECAY,
    "beta_1": _DECAY,
    "beta_2": _DECAY,
    "beta": _DECAY,
    "decay": _DECAY,
    "rho": _DECAY,
    "alpha": _DECAY,
    # Zero weight decay, lr_decay or momentum drops a transformation from the compat functions' chains (another state
    # structure) where a traced value cannot: property tests that pass them traced start above 0.
    "momentum": (1e-3, 0.999),
    "dampening": _DECAY,
    "momentum_decay": (0.0, 1.0),
    "eps": _EPS,
    "epsilon": _EPS,
    "eps_root": (0.0, 1.0),
    "initial_accumulator": (0.0, 2.0),
    "initial_accumulator_value": (0.0, 2.0),
    "initial_scale": (0.0, 2.0),
    "initial_nu": (0.0, 2.0),
    "initial_delta": (0.0, 1.0),
    "initial_mu": (-1.0, 1.0),
    "weight_decay": (1e-3, 1.0),
    "clipnorm": _CLIP,
    "clipvalue": _CLIP,
    "global_clipnorm": _CLIP,
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One public transformation with one setting of its arguments.

    Attributes:
      name: the test id.
      make: the public factory (or, for PyTorch's ``betas``, a thin adapter that takes them one by one).
      kwargs: arguments far from the defaults, so that every term of the update matters.
      decays: the numeric arguments that are learning rates or decays: differentiated in the gradient tests.
      zero_eps: overrides that set eps (and the accumulators' initial values, and weight decay) to 0,
        so that coordinates with exactly zero gradient give 0/0 inside the update; ``eps_note`` says why an
        entry keeps its eps.
      block: True for a building block (no learning rate, no sign): tests chain it with ``optax.scale``.
      complex: overrides for the complex-params test (a real initial first moment does not rotate with the
        gradients); None where complex params are not supported (the compat functions).
      all_reduce: why a step needs one all-reduce over a sharded mesh (its math reads every coordinate: a
        gradient norm, a finiteness check, statistics); empty for the elementwise ones, which need none.
      shardable: False where params split over several devices are refused (``atx.packed`` would gather them
        into one vector): the sharding workers skip such entries.
      smooth: overrides that keep the state in the math's precision, for the finite-difference test: with
        16-bit state the objective is a staircase at the scale of a finite-difference step (the derivative
        through the rounding is tested in tests/test_state_rounding.py).
      ranges: (low, high) of each numeric argument in ``kwargs``, for property-based tests. Given: the ranges
        that differ from ``RANGES``; after construction: every numeric argument's range.
      oracle: the float64 NumPy oracle of the math, where there is one (tests/test_oracle.py).
      variants: further complete ``make`` kwargs checked against the oracle: settings that exclude the
        ones in ``kwargs`` (heavy ball beside dampening, no memory at all, Adadelta without eps).
      defaults: the kwargs that leave every argument at its default but a required learning rate; set on the
        lecture's five optimizers, whose defaults the tests of hostile input and numerics use.
      scale_by: the optimizer's building block: ``scale_by(**block_kwargs(kwargs))`` chained with
        ``optax.scale(-learning_rate)`` is the optimizer.
      parabola: ``make`` kwargs that converge on the parabola (tests/test_common.py).
      rosenbrock: ``make`` kwargs that converge on Rosenbrock in ``ROSENBROCK_STEPS`` steps.
    """

    name: str
    make: Callable[..., optax.GradientTransformation]
    kwargs: Mapping[str, Any]
    decays: tuple[str, ...]
    zero_eps: Mapping[str, Any]
    block: bool = False
    complex: Mapping[str, Any] | None = dataclasses.field(default_factory=dict)
    eps_note: str = ""
    all_reduce: str = ""
    shardable: bool = True
    smooth: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ranges: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    oracle: Oracle | None = None
    variants: tuple[Mapping[str, Any], ...] = ()
    defaults: Mapping[str, Any] | None = None
    scale_by: Callable[..., optax.GradientTransformation] | None = None
    parabola: Mapping[str, Any] | None = None
    rosenbrock: Mapping[str, Any] | None = None

    def __post_init__(self):
        numeric = numeric_kwargs(self)
        if unknown := set(self.ranges) - numeric:
            raise ValueError(f"{self.name}: ranges for {sorted(unknown)}, which are not numeric kwargs")
        object.__setattr__(self, "ranges", {k: self.ranges.get(k, RANGES[k]) for k in sorted(numeric)})

    def __call__(self, **overrides: Any) -> optax.GradientTransformation:
        return self.make(**{**self.kwargs, **overrides})

    def __str__(self) -> str:  # pytest ids
        return self.name


def numeric_kwargs(entry: Entry) -> set[str]:
    """The entry's numeric hyperparameters (what ``optax.inject_hyperparams`` injects)."""
    return {k for k, v in entry.kwargs.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _torch_betas(factory):
    """PyTorch's ``betas=(b1, b2)`` as two arguments, so each can be injected and differentiated."""

    def make(b1, b2, **kwargs):
        return factory(betas=(b1, b2), **kwargs)

    parameters = [p for p in inspect.signature(factory).parameters.values() if p.name != "betas"]
    betas = [inspect.Parameter(b, inspect.Parameter.KEYWORD_ONLY, default=d) for b, d in (("b1", 0.9), ("b2", 0.999))]
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in parameters]
    make.__signature__ = inspect.Signature(keyword + betas)  # type: ignore[attr-defined]
    make.__name__ = factory.__name__
    return make


def _tracked(factory, **knobs):
    """``track(factory(...), **knobs)`` with ``factory``'s signature, so its hyperparameters can be injected."""

    @functools.wraps(factory)
    def make(**kwargs):
        return track(factory(**kwargs), **knobs)

    return make


def _packed(factory):
    """``packed(factory(...))`` with ``factory``'s signature, so its hyperparameters can be injected."""

    @functools.wraps(factory)
    def make(**kwargs):
        return atx.packed(factory(**kwargs))

    return make


_ZERO_L2 = {"weight_decay": 0.0}
# 8-bit state with every leaf but scalars quantized, in blocks of 2 (so a row of 3 ends in a short block).
_Q8 = atx.quantized(block_size=2, min_size=0)
# The policy's state dtypes (the params'), for the rotation and finite-difference tests (see
# _state_format_entries).
_POLICY_STATE = {"accumulator_dtype": None}
_TRACK_REDUCES = "track's statistics are means and extremes over every coordinate"
_NO_EPS_ADADELTA = "Adadelta with eps = 0 never moves unless initial_delta > 0, which this signature lacks"

# Each block that keeps params-shaped state, and Adam: (name, factory, kwargs, decays, zero_eps, dtype arguments).
_WITH_STATE = (
    (
        "adam",
        atx.adam,
        {"learning_rate": 0.05, "b1": 0.5, "b2": 0.8, "eps": 0.1},
        ("learning_rate", "b1", "b2"),
        {"eps": 0.0},
        ("mu_dtype", "nu_dtype"),
    ),
    (
        "scale_by_adagrad",
        atx.scale_by_adagrad,
        {"eps": 0.1, "initial_accumulator": 0.5},
        (),
        {"eps": 0.0, "initial_accumulator": 0.0},
        ("accumulator_dtype",),
    ),
    (
        "scale_by_rms-centered",
        atx.scale_by_rms,
        {"decay": 0.8, "eps": 0.1, "centered": True},
        ("decay",),
        {"eps": 0.0},
        ("accumulator_dtype",),
    ),
    (
        "scale_by_adadelta",
        atx.scale_by_adadelta,
        {"rho": 0.5, "eps": 0.1, "initial_scale": 0.3, "initial_delta": 0.2},
        ("rho",),
        {"eps": 0.0, "initial_scale": 0.0},
        ("accumulator_dtype",),
    ),
    (
        "scale_by_momentum",
        atx.scale_by_momentum,
        {"beta": 0.5, "dampening": 0.25, "nesterov": True},
        ("beta", "dampening"),
        {},
        ("accumulator_dtype",),
    ),
    (
        "scale_by_nadam",
        atx.scale_by_nadam,
        {"b1": 0.8, "b2": 0.9, "eps": 0.1, "momentum_decay": 0.1},
        ("b1", "b2", "momentum_decay"),
        {"eps": 0.0},
        ("mu_dtype", "nu_dtype"),
    ),
)


def _state_format_entries(
    label: str, dtype: Any, nearest: tuple[str, ...] = (), leave_out: tuple[str, ...] = ()
) -> list[Entry]:
    """The entries of ``_WITH_STATE`` with every state dtype argument ``dtype`` (by name where it is a dtype:
    optax.inject_hyperparams would turn jnp.bfloat16, a number type, into an array) and stochastic rounding,
    but for those named in ``nearest``, which round to nearest: ``{name}-{label}-state[-stochastic]``. The
    rotation and finite-difference tests use the policy's state dtypes (a real first-moment dtype on complex
    params is refused; low-precision state makes the objective a staircase at a finite difference's scale)."""
    entries = []
    for name, make, kwargs, decays, zero_eps, dtype_arguments in _WITH_STATE:
        if name in leave_out:
            continue
        rounding = {} if name in nearest else {"state_rounding": "stochastic"}
        policy = dict.fromkeys(dtype_arguments)
        entries.append(
            Entry(
                f"{name}-{label}-state{'' if name in nearest else '-stochastic'}",
                make,
                {**dict.fromkeys(dtype_arguments, dtype), **rounding, **kwargs},
                decays,
                zero_eps,
                block=name != "adam",
                complex=policy,
                smooth=policy,
            )
        )
    return entries


ROSENBROCK_STEPS = 10_000
_ADAM = {
    "learning_rate": 0.05,
    "b1": 0.5,
    "b2": 0.8,
    "eps": 0.1,
    "eps_root": 0.01,
    "initial_mu": -0.3,
    "initial_nu": 0.4,
}
_ADAM_ZERO_EPS = {"eps": 0.0, "eps_root": 0.0, "initial_nu": 0.0, "initial_mu": 0.0}

REGISTRY = [
    # The five optimizers, every term of the equation set away from its default, with their oracles.
    Entry(
        "adagrad",
        atx.adagrad,
        {"learning_rate": 0.3, "eps": 0.1, "initial_accumulator": 0.5},
        ("learning_rate",),
        {"eps": 0.0, "initial_accumulator": 0.0},
        oracle=ADAGRAD_ORACLE,
        defaults={"learning_rate": 0.1},
        scale_by=atx.scale_by_adagrad,
        parabola={"learning_rate": 1.0},
        rosenbrock={"learning_rate": 0.5},
    ),
    Entry(
        "rmsprop",
        atx.rmsprop,
        {"learning_rate": 0.05, "decay": 0.5, "eps": 0.1, "initial_scale": 2.0},
        ("learning_rate", "decay"),
        {"eps": 0.0, "initial_scale": 0.0},
        oracle=RMSPROP_ORACLE,
        defaults={"learning_rate": 0.1},
        scale_by=atx.scale_by_rms,
        parabola={"learning_rate": 0.01},
        # Without bias correction or annealing, RMSprop at a constant rate circles the minimum at a radius
        # that shrinks with the rate; 1e-3 lands inside the tolerance.
        rosenbrock={"learning_rate": 0.001},
    ),
    Entry(
        "adadelta",
        atx.adadelta,
        {"learning_rate": 0.7, "rho": 0.5, "eps": 0.1, "initial_scale": 0.3, "initial_delta": 0.2},
        ("learning_rate", "rho"),
        {"eps": 0.0, "initial_scale": 0.0, "initial_delta": 0.2},
        oracle=ADADELTA_ORACLE,
        variants=({"eps": 0.0, "initial_delta": 1e-4},),  # eps = 0 is allowed once initial_delta > 0.
        defaults={},
        scale_by=atx.scale_by_adadelta,
        parabola={"learning_rate": 1.0, "eps": 1e-4},
        # Adadelta's steps do not shrink in Rosenbrock's valley (its step size tracks its own past steps),
        # so at any constant rate it oscillates; an annealed learning rate, which the API accepts as a
        # schedule, converges (measured: loss 1.4e-9 after 10,000 steps).
        rosenbrock={"learning_rate": optax.exponential_decay(1.0, ROSENBROCK_STEPS, 1e-3)},
    ),
    Entry(
        "momentum",
        atx.momentum,
        {"learning_rate": 0.2, "beta": 0.5, "dampening": 0.25, "nesterov": True},
        ("learning_rate", "beta", "dampening"),
        {},
        oracle=MOMENTUM_ORACLE,
        variants=(
            {"learning_rate": 0.05, "dampening": 0.0},  # Heavy ball.
            {"learning_rate": 0.05, "dampening": 0.0, "nesterov": True},  # PyTorch's Nesterov form.
            {"learning_rate": 0.3, "beta": 0.0},  # Plain gradient descent.
        ),
        defaults={"learning_rate": 0.1},
        scale_by=atx.scale_by_momentum,
        parabola={"learning_rate": 0.1},
        rosenbrock={"learning_rate": 0.002},
    ),
    Entry(
        "adam",
        atx.adam,
        _ADAM,
        ("learning_rate", "b1", "b2"),
        # initial_mu too: a non-zero first moment over a zero second moment is x / 0 = inf, not 0 / 0.
        _ADAM_ZERO_EPS,
        complex={"initial_mu": 0.0},
        oracle=ADAM_ORACLE,
        variants=({"learning_rate": 0.01, "b1": 0.0, "b2": 0.0},),  # No memory at all: sign-like steps.
        defaults={"learning_rate": 0.1},
        scale_by=atx.scale_by_adam,
        parabola={"learning_rate": 0.1},
        rosenbrock={"learning_rate": 0.05},
    ),
    # The optimizers' own knobs.
    Entry(
        "rmsprop-centered-momentum-nesterov",
        atx.rmsprop,
        {"learning_rate": 0.02, "decay": 0.8, "eps": 0.1, "centered": True, "momentum": 0.7, "nesterov": True},
        ("learning_rate", "decay", "momentum"),
        {"eps": 0.0},
    ),
    Entry(
        "rmsprop-centered-bias-correction",
        atx.rmsprop,
        # float32 averages: at t = 1 the centered variance is exactly 0, s^_1 - (v^_1)^2 = g^2 - g^2, so a 16-bit
        # mean gradient leaves its rounding there, amplified (measured 7% of the step with bfloat16 params).
        {
            "learning_rate": 0.02,
            "decay": 0.8,
            "eps": 0.1,
            "centered": True,
            "bias_correction": True,
            "accumulator_dtype": "float32",
        },
        ("learning_rate", "decay"),
        {},
        complex=_POLICY_STATE,
        smooth=_POLICY_STATE,
        eps_note="centered and bias-corrected, the variance of the first step is exactly 0 (one sample): eps is "
        "its whole denominator",
    ),
    Entry(
        "adadelta-weight-decay",
        atx.adadelta,
        {"learning_rate": 0.7, "rho": 0.5, "eps": 0.1, "weight_decay": 0.1},
        ("learning_rate", "rho"),
        {"eps": 0.0, "initial_delta": 0.2, **_ZERO_L2},
    ),
    Entry(
        "adam-nesterov-amsgrad",
        atx.adam,
        {"learning_rate": 0.05, "b1": 0.8, "b2": 0.9, "eps": 0.1, "nesterov": True, "amsgrad": "corrected"},
        ("learning_rate", "b1", "b2"),
        {"eps": 0.0},
    ),
    # Each building block with each knob setting.
    Entry(
        "scale_by_adagrad",
        atx.scale_by_adagrad,
        {"eps": 0.1, "initial_accumulator": 0.5},
        (),
        {"eps": 0.0, "initial_accumulator": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_adagrad-eps-outside",
        atx.scale_by_adagrad,
        {"eps": 0.1, "eps_in_sqrt": False},
        (),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_rms",
        atx.scale_by_rms,
        {"decay": 0.5, "eps": 0.1, "initial_scale": 2.0},
        ("decay",),
        {"eps": 0.0, "initial_scale": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_rms-eps-outside",
        atx.scale_by_rms,
        {"decay": 0.7, "eps": 0.1, "eps_in_sqrt": False},
        ("decay",),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_rms-centered",
        atx.scale_by_rms,
        {"decay": 0.8, "eps": 0.1, "centered": True},
        ("decay",),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_rms-bias-correction",
        atx.scale_by_rms,
        {"decay": 0.8, "eps": 0.1, "initial_scale": 0.5, "bias_correction": True},
        ("decay",),
        {"eps": 0.0, "initial_scale": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_adadelta",
        atx.scale_by_adadelta,
        {"rho": 0.5, "eps": 0.1, "initial_scale": 0.3, "initial_delta": 0.2},
        ("rho",),
        {"eps": 0.0, "initial_scale": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_momentum",
        atx.scale_by_momentum,
        {"beta": 0.5, "dampening": 0.25},
        ("beta", "dampening"),
        {},
        block=True,
    ),
    Entry(
        "scale_by_momentum-heavy-ball-nesterov",
        atx.scale_by_momentum,
        {"beta": 0.8, "dampening": 0.0, "nesterov": True},
        ("beta",),
        {},
        block=True,
    ),
    Entry(
        "scale_by_momentum-first-step-undampened",
        atx.scale_by_momentum,
        {"beta": 0.8, "dampening": 0.3, "first_step_undampened": True},
        ("beta", "dampening"),
        {},
        block=True,
    ),
    Entry(
        "scale_by_adam",
        atx.scale_by_adam,
        {"b1": 0.5, "b2": 0.8, "eps": 0.1, "eps_root": 0.01, "initial_mu": -0.3, "initial_nu": 0.4},
        ("b1", "b2"),
        {"eps": 0.0, "eps_root": 0.0, "initial_nu": 0.0, "initial_mu": 0.0},
        block=True,
        complex={"initial_mu": 0.0},
    ),
    Entry(
        "scale_by_adam-nesterov",
        atx.scale_by_adam,
        {"b1": 0.7, "b2": 0.9, "eps": 0.1, "nesterov": True},
        ("b1", "b2"),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_adam-eps-hat",
        atx.scale_by_adam,
        {"b1": 0.7, "b2": 0.9, "eps": 0.1, "eps_hat": True},
        ("b1", "b2"),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_adam-amsgrad-raw",
        atx.scale_by_adam,
        {"b1": 0.7, "b2": 0.9, "eps": 0.1, "amsgrad": "raw"},
        ("b1", "b2"),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_adam-amsgrad-corrected",
        atx.scale_by_adam,
        {"b1": 0.7, "b2": 0.9, "eps": 0.1, "amsgrad": "corrected"},
        ("b1", "b2"),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_nadam",
        atx.scale_by_nadam,
        {"b1": 0.8, "b2": 0.9, "eps": 0.1, "momentum_decay": 0.1},
        ("b1", "b2", "momentum_decay"),
        {"eps": 0.0},
        block=True,
    ),
    Entry(
        "scale_by_nadam-keras",
        atx.scale_by_nadam,
        {"b1": 0.8, "b2": 0.9, "eps": 0.1, "momentum_decay": 1.0},
        ("b1", "b2"),
        {"eps": 0.0},
        block=True,
    ),
    Entry("bias_correction", atx.bias_correction, {"decay": 0.8}, ("decay",), {}, block=True),
    # 16-bit state with stochastic rounding, and 8-bit state (atx.quantized): each block that keeps
    # params-shaped state, and an optimizer.
    *_state_format_entries("bfloat16", "bfloat16"),
    # 8-bit: Adam (signed and unsigned codes, stochastic) and AdaGrad (to nearest); the other blocks' 8-bit
    # state is checked by value in tests/test_quantize.py (their property runs would take CI past its 15
    # minutes), and centered RMSprop refuses it.
    *_state_format_entries(
        "8bit",
        _Q8,
        nearest=("scale_by_adagrad",),
        leave_out=("scale_by_nadam", "scale_by_rms-centered", "scale_by_adadelta", "scale_by_momentum"),
    ),
    # The diagnostics wrapper, around an optimizer (GradientTransformationExtraArgs) and a block.
    Entry(
        "track-adam",
        _tracked(atx.adam),
        _ADAM,
        ("learning_rate", "b1", "b2"),
        _ADAM_ZERO_EPS,
        complex={"initial_mu": 0.0},
        oracle=ADAM_ORACLE,  # Watching the steps changes none of them.
        all_reduce=_TRACK_REDUCES,
    ),
    Entry(  # Every knob of track: statistics per leaf, measured every other step, quantiles of 3 coordinates.
        "track-scale_by_adagrad-per_leaf-every2-sample3",
        _tracked(atx.scale_by_adagrad, per_leaf=True, every=2, sample=3),
        {"eps": 0.1, "initial_accumulator": 0.5},
        (),
        {"eps": 0.0, "initial_accumulator": 0.0},
        block=True,
        all_reduce=_TRACK_REDUCES,
    ),
    # The packing wrapper, around an optimizer and a block: one flat buffer per dtype, so sharded params are
    # refused (packing would gather their shards into one vector).
    Entry(
        "packed-adam",
        _packed(atx.adam),
        _ADAM,
        ("learning_rate", "b1", "b2"),
        _ADAM_ZERO_EPS,
        complex={"initial_mu": 0.0},
        oracle=ADAM_ORACLE,  # One flat buffer instead of leaves: the same equation.
        shardable=False,
    ),
    Entry(
        "packed-scale_by_rms",
        _packed(atx.scale_by_rms),
        {"decay": 0.5, "eps": 0.1, "initial_scale": 2.0},
        ("decay",),
        {"eps": 0.0, "initial_scale": 0.0},
        block=True,
        shardable=False,
    ),
    # The compat functions, with the knobs that change their numbers set.
    Entry(
        "torch.adagrad",
        tt.adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.5, "eps": 0.1},
        ("lr", "lr_decay"),
        {"eps": 0.0, "initial_accumulator_value": 0.0, **_ZERO_L2},
        complex=None,
    ),
    Entry(
        "torch.rmsprop",
        tt.rmsprop,
        {"lr": 0.01, "alpha": 0.9, "eps": 0.1, "weight_decay": 0.1, "momentum": 0.5, "centered": True},
        ("lr", "alpha", "momentum"),
        {"eps": 0.0, **_ZERO_L2},
        complex=None,
    ),
    Entry(
        "torch.adadelta",
        tt.adadelta,
        {"lr": 0.7, "rho": 0.5, "eps": 0.1, "weight_decay": 0.1},
        ("lr", "rho"),
        _ZERO_L2,
        complex=None,
        eps_note=_NO_EPS_ADADELTA,
    ),
    Entry(
        "torch.sgd",
        tt.sgd,
        {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1},
        ("lr", "momentum", "dampening"),
        _ZERO_L2,
        complex=None,
    ),
    Entry(
        "torch.sgd-nesterov",
        tt.sgd,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "maximize": True},
        ("lr", "momentum"),
        {},
        complex=None,
    ),
    Entry(
        "torch.adam",
        _torch_betas(tt.adam),
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "eps": 0.1, "weight_decay": 0.1, "amsgrad": True},
        ("lr", "b1", "b2"),
        {"eps": 0.0, **_ZERO_L2},
        complex=None,
    ),
    Entry(
        "torch.adamw",
        _torch_betas(tt.adamw),
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "eps": 0.1, "weight_decay": 0.3},
        ("lr", "b1", "b2"),
        {"eps": 0.0},
        complex=None,
    ),
    Entry(
        "torch.nadam",
        _torch_betas(tt.nadam),
        {"lr": 0.05, "b1": 0.8, "b2": 0.9, "eps": 0.1, "weight_decay": 0.1, "momentum_decay": 0.1},
        ("lr", "b1", "b2", "momentum_decay"),
        {"eps": 0.0, **_ZERO_L2},
        complex=None,
    ),
    Entry(
        "keras.adagrad",
        kt.adagrad,
        {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 0.1, "weight_decay": 0.1},
        ("learning_rate",),
        {"epsilon": 0.0, "initial_accumulator_value": 0.0},
        complex=None,
    ),
    Entry(
        "keras.rmsprop",
        kt.rmsprop,
        {"learning_rate": 0.01, "rho": 0.8, "momentum": 0.5, "epsilon": 0.1, "centered": True, "weight_decay": 0.1},
        ("learning_rate", "rho", "momentum"),
        {"epsilon": 0.0},
        complex=None,
    ),
    Entry(
        "keras.adadelta",
        kt.adadelta,
        {"learning_rate": 0.5, "rho": 0.6, "epsilon": 0.1, "weight_decay": 0.1},
        ("learning_rate", "rho"),
        {},
        complex=None,
        eps_note=_NO_EPS_ADADELTA,
    ),
    Entry(
        "keras.sgd",
        kt.sgd,
        {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1, "global_clipnorm": 1.0},
        ("learning_rate", "momentum"),
        {},
        complex=None,
        all_reduce="global_clipnorm divides by the norm of all the gradients",
    ),
    Entry(
        "keras.adam",
        kt.adam,
        {
            "learning_rate": 0.05,
            "beta_1": 0.8,
            "beta_2": 0.9,
            "epsilon": 0.1,
            "amsgrad": True,
            "weight_decay": 0.1,
            "clipnorm": 0.5,
        },
        ("learning_rate", "beta_1", "beta_2"),
        {"epsilon": 0.0},
        complex=None,
        all_reduce="clipnorm divides each gradient by its norm, over the devices its leaf is split across",
    ),
    Entry(
        "keras.adamw",
        kt.adamw,
        {"learning_rate": 0.05, "weight_decay": 0.3, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.1},
        ("learning_rate", "beta_1", "beta_2"),
        {"epsilon": 0.0},
        complex=None,
    ),
    Entry(
        "keras.nadam",
        kt.nadam,
        {"learning_rate": 0.05, "beta_1": 0.8, "beta_2": 0.9, "epsilon": 0.1, "weight_decay": 0.1, "clipvalue": 0.5},
        ("learning_rate", "beta_1", "beta_2"),
        {"epsilon": 0.0},
        complex=None,
    ),
]


# ----------------------------------------------------------------------------- README's pytest and the whole matrix
# README's ``pytest`` runs each property of the registry on a slice of it, every SLICE-th entry, which slice
# fixed by the test's name: different properties see different entries, and a test sees the same entries from
# run to run. The rest of the matrix is marked ``exhaustive``, which CI runs (``pytest -m exhaustive``).
# tests/test_properties.py runs every entry in both, so that each is touched by README's command.
SLICE = 5


def parametrize_entries(entries: list[Entry]) -> Callable[[Callable], Callable]:
    """``@pytest.mark.parametrize("entry", entries)``: the test's slice unmarked, the others ``exhaustive``."""

    def decorate(test: Callable) -> Callable:
        offset = zlib.crc32(test.__name__.encode()) % SLICE
        params = [
            pytest.param(entry, id=entry.name, marks=() if (i + offset) % SLICE == 0 else pytest.mark.exhaustive)
            for i, entry in enumerate(entries)
        ]
        return pytest.mark.parametrize("entry", params)(test)

    return decorate


registry = parametrize_entries(REGISTRY)

# Selectors: tests parametrize over the registry entries that carry what they check.
with_oracle = [e for e in REGISTRY if e.oracle is not None]
with_defaults = [e for e in REGISTRY if e.defaults is not None]  # The lecture's five optimizers.
with_scale_by = [e for e in REGISTRY if e.scale_by is not None]
on_parabola = [e for e in REGISTRY if e.parabola is not None]
on_rosenbrock = [e for e in REGISTRY if e.rosenbrock is not None]


def expected_updates_dtype(entry: Entry, grad_dtype: Any, param_dtype: Any) -> np.dtype:
    """The updates' dtype convention, stated on its own (Optax's): the wider of the gradient's and the param's
    dtype, widened by any state dtype the entry's arguments name (as Optax's ``mu_dtype`` widens them; quantized
    state does not: it is storage, the math float32);
    float16 with bfloat16 gives float32, as under standard promotion."""
    named = [
        jnp.dtype(v)
        for k, v in entry.kwargs.items()
        if k.endswith("_dtype") and v is not None and not isinstance(v, atx.QuantizedDtype)  # Storage only.
    ]
    with jax.numpy_dtype_promotion("standard"):
        return jnp.dtype(jnp.result_type(jnp.dtype(grad_dtype), jnp.dtype(param_dtype), *named))
