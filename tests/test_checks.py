"""Hyperparameter checks: a bad Python number raises ValueError naming the argument and its range, when the
transformation is built; traced values pass unchecked."""

import math
import re

import jax
import jax.numpy as jnp
import optax
import pytest

import adaptive_tx as atx
import adaptive_tx.compat.keras as kt
import adaptive_tx.compat.torch as tt

# Each optimizer and its building block take the same hyperparameters: check both.
PAIRS = {
    "adagrad": (atx.adagrad, atx.scale_by_adagrad),
    "rmsprop": (atx.rmsprop, atx.scale_by_rms),
    "adadelta": (atx.adadelta, atx.scale_by_adadelta),
    "momentum": (atx.momentum, atx.scale_by_momentum),
    "adam": (atx.adam, atx.scale_by_adam),
}
DECAYS = [("rmsprop", "decay"), ("adadelta", "rho"), ("momentum", "beta"), ("momentum", "dampening")]
DECAYS += [("adam", "b1"), ("adam", "b2")]
NON_NEGATIVE = [
    ("adagrad", "eps"),
    ("adagrad", "initial_accumulator"),
    ("rmsprop", "eps"),
    ("rmsprop", "initial_scale"),
]
NON_NEGATIVE += [("adadelta", "eps"), ("adadelta", "initial_scale"), ("adadelta", "initial_delta")]
NON_NEGATIVE += [("adam", "eps"), ("adam", "eps_root"), ("adam", "initial_nu")]

# (factory, keyword arguments, argument named in the message, range named in the message)
BAD_VALUES = [
    *[
        (factory, {name: value}, name, "[0, 1)")
        for algo, name in DECAYS
        for factory in PAIRS[algo]
        for value in (-0.1, 1.0, 1.5, math.nan)
    ],
    *[(atx.bias_correction, {"decay": v}, "decay", "[0, 1)") for v in (-0.1, 1.0, 1.5, math.nan)],
    *[
        (factory, {name: value}, name, ">= 0")
        for algo, name in NON_NEGATIVE
        for factory in PAIRS[algo]
        for value in (-1e-8, math.nan, math.inf)
    ],
    *[(f, {"initial_mu": v}, "initial_mu", "finite") for f in PAIRS["adam"] for v in (math.nan, math.inf, -math.inf)],
    *[
        (f, {"learning_rate": v}, "learning_rate", ">= 0")
        for f in (atx.adam, atx.adagrad, atx.rmsprop, atx.adadelta, atx.momentum)
        for v in (-0.1, math.nan, math.inf)
    ],
]


def _call(factory, kwargs):
    if "learning_rate" not in kwargs and factory in (atx.adagrad, atx.rmsprop, atx.momentum, atx.adam):
        kwargs = {"learning_rate": 0.1, **kwargs}
    return factory(**kwargs)


@pytest.mark.parametrize(
    ("factory", "kwargs", "name", "allowed"),
    BAD_VALUES,
    ids=[f"{f.__name__}-{next(iter(k.items()))}" for f, k, _, _ in BAD_VALUES],
)
def test_bad_hyperparameter_raises_value_error_naming_it(factory, kwargs, name, allowed):
    with pytest.raises(ValueError, match=rf"^{name} must be ") as error:
        _call(factory, kwargs)
    assert allowed in str(error.value)
    assert repr(kwargs[name]) in str(error.value)  # Says what was given.


@pytest.mark.parametrize("factory", [atx.adadelta, atx.scale_by_adadelta])
def test_adadelta_that_can_never_move_is_rejected(factory):
    with pytest.raises(ValueError, match="eps and initial_delta cannot both be 0"):
        factory(eps=0.0, initial_delta=0.0)
    factory(eps=0.0, initial_delta=1e-3)  # Either one positive is enough.
    factory(eps=1e-6, initial_delta=0.0)


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (atx.adam, {"learning_rate": 0.1, "b1": "0.9"}, "b1"),
        (atx.rmsprop, {"learning_rate": None}, "learning_rate"),
        (atx.adadelta, {"learning_rate": None}, "learning_rate"),
        (atx.adagrad, {"learning_rate": 0.1, "eps": True}, "eps"),
        (atx.momentum, {"learning_rate": 0.1, "nesterov": "yes"}, "nesterov"),
    ],
)
def test_wrong_type_raises_type_error_naming_it(factory, kwargs, name):
    with pytest.raises(TypeError, match=rf"^{name} must be"):
        factory(**kwargs)


def test_edges_of_the_ranges_are_accepted():
    atx.adam(0.0, b1=0.0, b2=0.0, eps=0.0, eps_root=0.0, initial_mu=-5.0, initial_nu=0.0)
    atx.rmsprop(1.0, decay=0.0, eps=0.0)
    atx.momentum(0.1, beta=0.0, dampening=0.0)
    atx.adagrad(0.1, eps=0.0, initial_accumulator=0.0)
    atx.bias_correction(0.0)


def test_traced_hyperparameters_are_not_checked():
    # Under jit (as under optax.inject_hyperparams) hyperparameters are tracers: no Python check may run.
    @jax.jit
    def first_update(b1, lr):
        tx = atx.adam(lr, b1=b1)
        g = jnp.ones(2)
        return tx.update(g, tx.init(g))[0]

    assert first_update(jnp.float32(0.5), jnp.float32(0.1)).shape == (2,)
    tx = optax.inject_hyperparams(atx.rmsprop)(learning_rate=0.1, decay=0.5)
    jax.jit(tx.update)(jnp.ones(2), tx.init(jnp.ones(2)))


# The compat functions check their framework's arguments under the framework's names.
COMPAT_BAD = [
    (tt.adagrad, {"lr": -0.1}, "lr", ">= 0"),
    (tt.adagrad, {"lr_decay": -0.1}, "lr_decay", ">= 0"),
    (tt.adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value", ">= 0"),
    (tt.adagrad, {"eps": math.nan}, "eps", ">= 0"),
    (tt.rmsprop, {"alpha": 1.5}, "alpha", "[0, 1)"),
    (tt.rmsprop, {"momentum": -0.5}, "momentum", "[0, 1)"),
    (tt.rmsprop, {"weight_decay": -1e-4}, "weight_decay", ">= 0"),
    (tt.adadelta, {"rho": 1.0}, "rho", "[0, 1)"),
    (tt.sgd, {"momentum": 1.0}, "momentum", "[0, 1)"),
    (tt.sgd, {"dampening": 2.0}, "dampening", "[0, 1)"),
    (tt.adam, {"betas": (0.9, 1.0)}, "betas[1]", "[0, 1)"),
    (tt.adam, {"betas": (-0.1, 0.9)}, "betas[0]", "[0, 1)"),
    (tt.adamw, {"weight_decay": -0.01}, "weight_decay", ">= 0"),
    (kt.adagrad, {"epsilon": -1e-7}, "epsilon", ">= 0"),
    (kt.adagrad, {"initial_accumulator_value": -0.1}, "initial_accumulator_value", ">= 0"),
    (kt.rmsprop, {"rho": 1.0}, "rho", "[0, 1)"),
    (kt.rmsprop, {"momentum": 1.2}, "momentum", "[0, 1)"),
    (kt.adadelta, {"learning_rate": math.nan}, "learning_rate", ">= 0"),
    (kt.sgd, {"momentum": -0.1}, "momentum", "[0, 1)"),
    (kt.sgd, {"clipnorm": -1.0}, "clipnorm", ">= 0"),
    (kt.adam, {"beta_2": 1.0}, "beta_2", "[0, 1)"),
    (kt.adam, {"clipvalue": -1.0}, "clipvalue", ">= 0"),
    (kt.adamw, {"weight_decay": -0.004}, "weight_decay", ">= 0"),
]


@pytest.mark.parametrize(
    ("factory", "kwargs", "name", "allowed"),
    COMPAT_BAD,
    ids=[f"{f.__module__.rsplit('.', 1)[-1]}.{f.__name__}-{next(iter(k))}" for f, k, _, _ in COMPAT_BAD],
)
def test_compat_bad_argument_raises_naming_the_frameworks_argument(factory, kwargs, name, allowed):
    with pytest.raises(ValueError, match=rf"^{re.escape(name)} must be ") as error:
        factory(**kwargs)
    assert allowed in str(error.value)


@pytest.mark.parametrize(
    ("factory", "kwargs", "name"),
    [
        (tt.rmsprop, {"centered": 1}, "centered"),
        (tt.sgd, {"nesterov": "yes", "momentum": 0.9}, "nesterov"),
        (tt.adam, {"amsgrad": None}, "amsgrad"),
        (kt.adam, {"amsgrad": 1}, "amsgrad"),
        (kt.sgd, {"nesterov": "no"}, "nesterov"),
    ],
)
def test_compat_flags_must_be_bools(factory, kwargs, name):
    with pytest.raises(TypeError, match=rf"^{name} must be a bool"):
        factory(**kwargs)


def test_bad_knobs_raise():
    with pytest.raises(ValueError, match=r"^amsgrad must be one of \('raw', 'corrected', None\), got 'max'"):
        atx.scale_by_adam(amsgrad="max")
    for block, knob in [
        (atx.scale_by_adagrad, "eps_in_sqrt"),
        (atx.scale_by_rms, "centered"),
        (atx.scale_by_momentum, "first_step_undampened"),
        (atx.scale_by_adam, "eps_hat"),
        (atx.scale_by_adam, "nesterov"),
    ]:
        with pytest.raises(TypeError, match=rf"^{knob} must be a bool"):
            block(**{knob: 1})


def test_rmsprop_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        atx.rmsprop(0.1, nesterov=True)


def test_hyperparameters_are_keyword_only_on_blocks():
    # A positional number would silently land on the first hyperparameter (eps, b1, ...): refused.
    for block in (atx.scale_by_adagrad, atx.scale_by_rms, atx.scale_by_adadelta, atx.scale_by_momentum):
        with pytest.raises(TypeError, match="positional"):
            block(0.5)
    with pytest.raises(TypeError, match="positional"):
        atx.scale_by_adam(0.5)
