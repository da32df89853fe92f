"""Shared machinery of the parity tests: one problem, run by adaptive_tx and by the real framework.

The problem: two float64 leaves (a vector and a matrix) and the non-linear gradient
``g = c * p + cos(3 p) - 0.3`` (a per-leaf curvature c), evaluated in NumPy on each framework's own
parameters, 45 steps. Trajectories are compared by displacement from the start, ``p_t - p_0``, so an
optimizer that barely moves (Keras's Adadelta) is still compared on what it did.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adaptive_tx.compat import _build
from tests.helpers import run_steps

STEPS = 45
# float64 on both sides, the same equations in a different operation order: the largest measured difference
# is 2.2e-13 (docs/defaults.md lists each optimizer's).
PARITY_RTOL = 1e-10
# A knob set the wrong way must move the trajectory by far more than rounding (measured: 1e-2 to 1e+1).
NEGATIVE_MIN = 1e-3

_rng = np.random.default_rng(42)
START = [_rng.normal(size=5), _rng.normal(size=(2, 3))]
CURVATURE = [1.5, 0.7]


def grad_np(leaves: list[np.ndarray]) -> list[np.ndarray]:
    return [c * p + np.cos(3 * p) - 0.3 for c, p in zip(CURVATURE, leaves, strict=True)]


def _grad_jax(params: list[jax.Array], t: Any) -> list[jax.Array]:
    del t
    return [c * p + jnp.cos(3 * p) - 0.3 for c, p in zip(CURVATURE, params, strict=True)]


def require(module: str):
    """Import a framework, or skip with the reason (tests/conftest.py turns the skip into a failure in CI)."""
    return pytest.importorskip(
        module, reason=f"{module} is not installed: pip install -e '.[parity]' (CI installs it, and fails without it)"
    )


@dataclasses.dataclass(frozen=True)
class Schedule:
    """lr_t = initial * rate**t, t = 0, 1, ... (the same count as optax.scale_by_schedule)."""

    initial: float
    rate: float

    def optax(self) -> Callable[[Any], Any]:
        return lambda count: self.initial * jnp.power(self.rate, jnp.asarray(count, jnp.float64))

    def at(self, t: int) -> float:
        return self.initial * self.rate**t


def ours(tx_factory: Callable[[], optax.GradientTransformation]) -> list[list[np.ndarray]]:
    """adaptive_tx's trajectory p_1 .. p_STEPS in float64."""
    with jax.enable_x64(True):
        params = [jnp.asarray(p, jnp.float64) for p in START]
        trajectory, _ = run_steps(tx_factory(), params, _grad_jax, STEPS)
        return [[np.asarray(p) for p in step] for step in trajectory]


def torch_run(make: Callable[[list[Any]], Any], schedule: Schedule | None = None) -> list[list[np.ndarray]]:
    """``torch.optim`` trajectory; ``make(params) -> optimizer``. The default dtype is float64 while the
    optimizer is built and run, so its step counters are float64 too (PyTorch keeps ``step`` in the default
    dtype, and a float32 step would round the bias corrections)."""
    torch = require("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = [torch.tensor(p.copy(), requires_grad=True) for p in START]
        optimizer = make(params)
        out = []
        for t in range(STEPS):
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = schedule.at(t)
            for p, g in zip(params, grad_np([p.detach().numpy() for p in params]), strict=True):
                p.grad = torch.from_numpy(g)
            optimizer.step()
            out.append([p.detach().numpy().copy() for p in params])
        return out
    finally:
        torch.set_default_dtype(previous)


def keras_run(make: Callable[[], Any]) -> list[list[np.ndarray]]:
    """``keras.optimizers`` trajectory on the JAX backend with floatx float64; ``make() -> optimizer``."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = require("keras")
    assert keras.backend.backend() == "jax", "these tests run Keras on its JAX backend"
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    # Keras's own code under the user's default promotion rules, not the suite's strict ones.
    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        try:
            variables = [keras.Variable(p.copy(), dtype="float64") for p in START]
            optimizer = make()
            optimizer.build(variables)
            out = []
            for _ in range(STEPS):
                optimizer.apply(grad_np([np.asarray(v.value) for v in variables]), variables)
                out.append([np.asarray(v.value).copy() for v in variables])
            return out
        finally:
            keras.config.set_floatx(previous)


def displacement_error(actual: list[list[np.ndarray]], expected: list[list[np.ndarray]]) -> float:
    """max over steps and leaves of max|d_actual - d_expected| / max|d_expected|, d = p_t - p_0."""
    worst = 0.0
    for step_a, step_e in zip(actual, expected, strict=True):
        for a, e, p0 in zip(step_a, step_e, START, strict=True):
            scale = np.max(np.abs(e - p0))
            worst = max(worst, float(np.max(np.abs(a - e)) / scale))
    return worst


@dataclasses.dataclass(frozen=True)
class Case:
    """One compat function with one set of arguments, against its framework.

    ``kwargs`` are the framework's arguments, taken alike by the compat function and the framework's class
    (for a scheduled case, without the learning rate). ``build`` is the knob-explicit builder call
    (``adaptive_tx.compat._build``) that the compat function makes; ``negatives`` maps each knob to a wrong
    setting (a value, or a :class:`Wrong` that sets other knobs with it), which must move the trajectory
    away from the framework's.
    """

    name: str
    compat: Callable[..., optax.GradientTransformation]
    framework: str  # attribute of torch.optim / keras.optimizers
    kwargs: dict[str, Any]
    build: tuple[Callable[..., optax.GradientTransformation], dict[str, Any]]
    negatives: dict[str, Any] = dataclasses.field(default_factory=dict)
    schedule: Schedule | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def library(self) -> str:
        """ "torch" or "keras": the framework the compat function reproduces."""
        return self.compat.__module__.rsplit(".", 1)[-1]


@dataclasses.dataclass(frozen=True)
class Wrong:
    """A negative control's wrong ``value`` that takes other knobs with it (``also``), where the builder
    would otherwise reject the combination: ``weight_decay=0`` leaves ``decoupled=True`` nothing to act on,
    ``momentum=0`` leaves ``lr_in_buffer=True`` no buffer."""

    value: Any
    also: dict[str, Any]

    def overrides(self, knob: str) -> dict[str, Any]:
        return {knob: self.value, **self.also}


def framework_module(library: str) -> Any:
    """``torch.optim`` or ``keras.optimizers`` (Keras on its JAX backend), or skip if not installed."""
    if library == "torch":
        return require("torch").optim
    os.environ.setdefault("KERAS_BACKEND", "jax")
    return require("keras").optimizers


_TRAJECTORIES: dict[tuple[str, str], list[list[np.ndarray]]] = {}


def framework_trajectory(case: Case) -> list[list[np.ndarray]]:
    """The framework's trajectory for ``case``, run once per test session."""
    key = (case.library, case.name)
    if key not in _TRAJECTORIES:
        _TRAJECTORIES[key] = _run_framework(case)
    return _TRAJECTORIES[key]


def _run_framework(case: Case) -> list[list[np.ndarray]]:
    cls = getattr(framework_module(case.library), case.framework)
    if case.library == "torch":
        return torch_run(lambda ps: cls(ps, **case.kwargs), case.schedule)
    keras = require("keras")
    kwargs = dict(case.kwargs)
    if case.schedule is not None:
        kwargs["learning_rate"] = keras.optimizers.schedules.ExponentialDecay(
            case.schedule.initial, decay_steps=1, decay_rate=case.schedule.rate
        )
    return keras_run(lambda: cls(**kwargs))


def compat_factory(case: Case) -> Callable[[], optax.GradientTransformation]:
    kwargs = dict(case.kwargs)
    if case.schedule is not None:
        kwargs["lr" if case.library == "torch" else "learning_rate"] = case.schedule.optax()
    return lambda: case.compat(**kwargs)


def build_factory(case: Case, **overrides: Any) -> Callable[[], optax.GradientTransformation]:
    fn, kwargs = case.build
    kwargs = {**kwargs, **overrides}
    if case.schedule is not None:
        kwargs["learning_rate"] = case.schedule.optax()
    # The knobs a framework puts around the block travel to the builder as one _build.Around.
    knobs = {f.name for f in dataclasses.fields(_build.Around)}
    around = _build.Around(**{k: kwargs.pop(k) for k in list(kwargs) if k in knobs})
    return lambda: fn(**kwargs, around=around)


def assert_matches(case: Case, factory: Callable[[], optax.GradientTransformation]) -> None:
    """``factory``'s trajectory equals the framework's to ``PARITY_RTOL``."""
    error = displacement_error(ours(factory), framework_trajectory(case))
    assert error < PARITY_RTOL, f"{case.name}: max relative difference {error:.3g}"


def assert_knob_matters(case: Case, knob: str) -> None:
    """The builder with ``knob`` set wrong moves away from the framework by more than ``NEGATIVE_MIN``."""
    wrong = case.negatives[knob]
    overrides = wrong.overrides(knob) if isinstance(wrong, Wrong) else {knob: wrong}
    error = displacement_error(ours(build_factory(case, **overrides)), framework_trajectory(case))
    assert error > NEGATIVE_MIN, f"{case.name}: {overrides} differs by only {error:.3g}"


def case_params(cases: list[Case]) -> list[Any]:
    """pytest params (framework, case) for ``cases``, with ids ``framework-case``."""
    return [pytest.param(c.library, c, id=f"{c.library}-{c}") for c in cases]


def negative_controls(cases: list[Case]) -> list[Any]:
    """pytest params (framework, case, knob) for every negative control of ``cases``."""
    return [pytest.param(c.library, c, k, id=f"{c.library}-{c}-{k}") for c in cases for k in c.negatives]


def framework_parameters(cls: Any, skip: int) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of ``cls.__init__``'s parameters, less the first ``skip`` and ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[skip:]
    return [(p.name, p.kind, p.default) for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]


def parameters(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
