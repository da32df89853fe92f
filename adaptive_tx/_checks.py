"""Hyperparameter checks: a bad Python number raises when the transformation is built, naming the argument.

Traced values (under ``jax.jit`` or ``optax.inject_hyperparams``) and arrays pass unchecked: their values
are not known while the transformation is built.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from adaptive_tx._quantize import QuantizedDtype


def is_number(value: Any) -> bool:
    """True for Python and NumPy real numbers; False for arrays and tracers, which are not checked."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _describe(value: Any) -> str:
    return repr(value) if is_number(value) else f"a {type(value).__name__}"


def check_number(name: str, value: Any) -> bool:
    """Reject hyperparameters that are neither numbers nor arrays; return True if ``value`` is checkable.

    Traced values (under ``jax.jit`` or ``optax.inject_hyperparams``) and arrays pass unchecked.
    """
    if isinstance(value, bool | np.bool_) or not (is_number(value) or isinstance(value, jax.Array | np.ndarray)):
        raise TypeError(f"{name} must be a real number or an array, got {_describe(value)}.")
    return is_number(value)


def check_bool(name: str, value: Any) -> None:
    """Flags must be Python bools: they choose the computation, so they cannot be traced."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}.")


def check_dtype(name: str, dtype: Any) -> None:
    """A state dtype must be None (the policy's), an inexact dtype (real or complex floating point), or
    ``quantized(...)``."""
    if dtype is None or isinstance(dtype, QuantizedDtype):
        return
    try:
        ok = jnp.issubdtype(jnp.dtype(dtype), jnp.inexact)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(
            f"{name} must be None, a floating-point dtype (real or complex) or adaptive_tx.quantized(...), got "
            f"{dtype!r}."
        )


def check_choice(name: str, value: Any, choices: Any) -> None:
    """A string option must be one of its ``Literal[...]`` type's values (``None`` where the type allows it)."""
    allowed = tuple(None if c is type(None) else c for c in get_args(choices))
    allowed = tuple(a for arg in allowed for a in (get_args(arg) or (arg,)))  # Literal[...] | None.
    if value not in allowed or isinstance(value, bool):
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")


StateRounding = Literal["nearest", "stochastic"]
StateDtype = DTypeLike | QuantizedDtype | None  # What the *_dtype arguments take.


def check_state_rounding(rounding: Any, seed: Any) -> None:
    """``state_rounding`` must name a mode; the seed of stochastic rounding must be an integer."""
    check_choice("state_rounding", rounding, StateRounding)
    integer = isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_)
    if not integer and not (isinstance(seed, jax.Array | np.ndarray) and jnp.issubdtype(seed.dtype, jnp.integer)):
        raise TypeError(f"rounding_seed must be an integer, got {_describe(seed)}.")


def optax_name(name: str, value: Any, default: Any, optax: str, optax_value: Any) -> Any:
    """One argument under two names, ours and Optax's (``initial_accumulator_value``): the one given.

    Optax's name is accepted so that code written for Optax runs unchanged; giving both is an error.
    """
    if optax_value is None:
        return value
    if not (is_number(value) and value == default):
        raise TypeError(f"{name} and {optax} are one argument under two names (ours and Optax's): pass one of them.")
    return optax_value


def check_decay(name: str, value: Any) -> None:
    """A decay rate must lie in [0, 1): 1 would freeze the average at its initial value."""
    if check_number(name, value) and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")


def check_non_negative(name: str, value: Any, *, allow_inf: bool = False) -> None:
    """eps and the initial values of squared accumulators must be finite (or ``inf``) and >= 0."""
    if check_number(name, value) and not ((allow_inf or math.isfinite(value)) and value >= 0):
        raise ValueError(f"{name} must be {'' if allow_inf else 'finite and '}>= 0, got {value!r}.")


def check_finite(name: str, value: Any) -> None:
    """Initial values of signed accumulators (first moments) may be any finite number."""
    if check_number(name, value) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
    """A constant learning rate must be finite and >= 0 (the optimizers already descend); schedules pass."""
    if not callable(value):
        check_non_negative(name, value)


def all_numbers(values: Sequence[Any]) -> bool:
    """True if every value is a checkable Python number (no tracers or arrays)."""
    return all(is_number(v) for v in values)


def check_count(name: str, value: Any, *, allow_none: bool = False) -> None:
    """A count that shapes the computation (every how many steps, how many coordinates) is a Python int >= 1."""
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Integral) or isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be an int >= 1{' or None' if allow_none else ''}, got {_describe(value)}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}.")
