"""Hyperparameter checks: a bad Python number raises ValueError naming the argument and its range, when the
transformation is built; traced values pass unchecked."""

import math

import jax
import jax.numpy as jnp
import optax
import pytest

import adaptive_tx as atx

# (factory, keyword arguments, argument named in the message, range named in the message)
BAD_VALUES = [
    *[
        (factory, {name: value}, name, "[0, 1)")
        for factory, name in [
            (atx.rmsprop, "decay"),
            (atx.scale_by_rms, "decay"),
            (atx.adadelta, "rho"),
            (atx.scale_by_adadelta, "rho"),
            (atx.momentum, "beta"),
            (atx.scale_by_momentum, "beta"),
            (atx.momentum, "dampening"),
            (atx.adam, "b1"),
            (atx.adam, "b2"),
            (atx.scale_by_adam, "b1"),
            (atx.scale_by_adam, "b2"),
            (atx.bias_correction, "decay"),
        ]
        for value in (-0.1, 1.0, 1.5, math.nan)
    ],
    *[
        (factory, {name: value}, name, ">= 0")
        for factory, name in [
            (atx.adagrad, "eps"),
            (atx.scale_by_adagrad, "eps"),
            (atx.rmsprop, "eps"),
            (atx.adadelta, "eps"),
            (atx.adam, "eps"),
            (atx.adam, "eps_root"),
            (atx.adagrad, "initial_accumulator"),
            (atx.rmsprop, "initial_scale"),
            (atx.adadelta, "initial_scale"),
            (atx.adadelta, "initial_delta"),
            (atx.adam, "initial_nu"),
            (atx.scale_by_adam, "initial_nu"),
        ]
        for value in (-1e-8, math.nan, math.inf)
    ],
    *[(atx.adam, {"initial_mu": v}, "initial_mu", "finite") for v in (math.nan, math.inf, -math.inf)],
    *[(f, {"learning_rate": v}, "learning_rate", ">= 0") for f in (atx.adam, atx.adagrad) for v in (-0.1, math.nan)],
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
