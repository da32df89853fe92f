"""adaptive_tx.compat.keras against the real keras.optimizers (JAX backend, float64, 45 steps, tests/parity.py)."""

import os

import pytest

import adaptive_tx.compat.keras as kt
from adaptive_tx.compat import _build
from tests.parity import (
    Case,
    Schedule,
    assert_knob_matters,
    assert_matches,
    build_factory,
    compat_factory,
    framework_parameters,
    negative_controls,
    parameters,
    require,
)

DECOUPLED = dict(decoupled=True)

CASES = [
    Case(
        "adagrad-defaults",
        kt.adagrad,
        "Adagrad",
        {},
        (_build.adagrad, dict(learning_rate=1e-3, eps=1e-7, initial_accumulator=0.1, eps_in_sqrt=True, **DECOUPLED)),
        {"initial_accumulator": 0.0},
    ),
    Case(
        "adagrad-knobs",
        kt.adagrad,
        "Adagrad",
        dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=0.1, weight_decay=0.1),
        (
            _build.adagrad,
            dict(learning_rate=0.1, eps=0.1, initial_accumulator=0.5, eps_in_sqrt=True, weight_decay=0.1, **DECOUPLED),
        ),
        {"eps_in_sqrt": False, "decoupled": False, "initial_accumulator": 0.1},
    ),
    Case(
        "rmsprop-defaults",
        kt.rmsprop,
        "RMSprop",
        {},
        (
            _build.rmsprop,
            dict(learning_rate=1e-3, decay=0.9, eps=1e-7, eps_in_sqrt=True, centered=False, lr_in_buffer=True),
        ),
        {"decay": 0.99},
    ),
    Case(
        "rmsprop-knobs",
        kt.rmsprop,
        "RMSprop",
        dict(learning_rate=0.01, rho=0.8, momentum=0.5, epsilon=0.1, centered=True, weight_decay=0.1),
        (
            _build.rmsprop,
            dict(
                learning_rate=0.01,
                decay=0.8,
                eps=0.1,
                eps_in_sqrt=True,
                centered=True,
                momentum=0.5,
                lr_in_buffer=True,
                weight_decay=0.1,
                **DECOUPLED,
            ),
        ),
        {"eps_in_sqrt": False, "centered": False, "momentum": 0.0, "decoupled": False},
    ),
    Case(
        "rmsprop-momentum-schedule",
        kt.rmsprop,
        "RMSprop",
        dict(rho=0.9, momentum=0.8, epsilon=0.1, weight_decay=0.1),
        (
            _build.rmsprop,
            dict(
                decay=0.9,
                eps=0.1,
                eps_in_sqrt=True,
                centered=False,
                momentum=0.8,
                lr_in_buffer=True,
                weight_decay=0.1,
                **DECOUPLED,
            ),
        ),
        {"lr_in_buffer": False},  # Keras accumulates lr_t * g / rms in its momentum buffer.
        schedule=Schedule(0.05, 0.9),
    ),
    Case(
        "adadelta-defaults",
        kt.adadelta,
        "Adadelta",
        {},
        (_build.adadelta, dict(learning_rate=1e-3, rho=0.95, eps=1e-7, **DECOUPLED)),
        {"rho": 0.9},
    ),
    Case(
        "adadelta-knobs",
        kt.adadelta,
        "Adadelta",
        dict(learning_rate=0.5, rho=0.8, epsilon=0.1, weight_decay=0.1),
        (_build.adadelta, dict(learning_rate=0.5, rho=0.8, eps=0.1, weight_decay=0.1, **DECOUPLED)),
        {"decoupled": False},
    ),
    Case(
        "sgd-defaults",
        kt.sgd,
        "SGD",
        {},
        (
            _build.sgd,
            dict(
                learning_rate=0.01,
                momentum=0.0,
                dampening=0.0,
                nesterov=False,
                first_step_undampened=False,
                lr_in_buffer=True,
            ),
        ),
        {"learning_rate": 1e-3},
    ),
    Case(
        "sgd-knobs",
        kt.sgd,
        "SGD",
        dict(learning_rate=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
        (
            _build.sgd,
            dict(
                learning_rate=0.05,
                momentum=0.8,
                dampening=0.0,
                nesterov=True,
                first_step_undampened=False,
                lr_in_buffer=True,
                weight_decay=0.1,
                **DECOUPLED,
            ),
        ),
        {"nesterov": False, "decoupled": False, "dampening": 0.5},
    ),
    Case(
        "sgd-momentum-schedule",
        kt.sgd,
        "SGD",
        dict(momentum=0.8, weight_decay=0.1),
        (
            _build.sgd,
            dict(
                momentum=0.8,
                dampening=0.0,
                nesterov=False,
                first_step_undampened=False,
                lr_in_buffer=True,
                weight_decay=0.1,
                **DECOUPLED,
            ),
        ),
        {"lr_in_buffer": False},
        schedule=Schedule(0.05, 0.9),
    ),
    Case(
        "adam-defaults",
        kt.adam,
        "Adam",
        {},
        (
            _build.adam,
            dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7, eps_hat=True, amsgrad=None, **DECOUPLED),
        ),
        {"b2": 0.99},
    ),
    Case(
        "adam-knobs",
        kt.adam,
        "Adam",
        dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=0.1, amsgrad=True, weight_decay=0.1),
        (
            _build.adam,
            dict(
                learning_rate=0.05,
                b1=0.8,
                b2=0.9,
                eps=0.1,
                eps_hat=True,
                amsgrad="raw",
                weight_decay=0.1,
                **DECOUPLED,
            ),
        ),
        {"eps_hat": False, "amsgrad": "corrected", "decoupled": False},
    ),
    Case(
        "adam-clipvalue",
        kt.adam,
        "Adam",
        dict(learning_rate=0.05, epsilon=0.1, clipvalue=0.5),
        (_build.adam, dict(learning_rate=0.05, b1=0.9, b2=0.999, eps=0.1, eps_hat=True, amsgrad=None, clipvalue=0.5)),
        {"clipvalue": None},
    ),
    Case(
        "adam-clipnorm",
        kt.adam,
        "Adam",
        dict(learning_rate=0.05, epsilon=0.1, clipnorm=0.5),
        (_build.adam, dict(learning_rate=0.05, b1=0.9, b2=0.999, eps=0.1, eps_hat=True, amsgrad=None, clipnorm=0.5)),
        {"clipnorm": None, "global_clipnorm": 0.5},
    ),
    Case(
        "sgd-global-clipnorm",
        kt.sgd,
        "SGD",
        dict(learning_rate=0.05, global_clipnorm=0.5),
        (
            _build.sgd,
            dict(
                learning_rate=0.05,
                momentum=0.0,
                dampening=0.0,
                nesterov=False,
                first_step_undampened=False,
                global_clipnorm=0.5,
            ),
        ),
        {"global_clipnorm": None},
    ),
    Case(
        "nadam-defaults",
        kt.nadam,
        "Nadam",
        {},
        (_build.nadam, dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7, momentum_decay=1.0, **DECOUPLED)),
        {"momentum_decay": 4e-3},  # PyTorch's.
    ),
    Case(
        "nadam-knobs",
        kt.nadam,
        "Nadam",
        dict(learning_rate=0.05, beta_1=0.8, beta_2=0.9, epsilon=0.1, weight_decay=0.1),
        (
            _build.nadam,
            dict(learning_rate=0.05, b1=0.8, b2=0.9, eps=0.1, momentum_decay=1.0, weight_decay=0.1, **DECOUPLED),
        ),
        {"momentum_decay": float("inf"), "decoupled": False},
    ),
    Case(
        "adamw-defaults",
        kt.adamw,
        "AdamW",
        {},
        (
            _build.adam,
            dict(
                learning_rate=1e-3,
                b1=0.9,
                b2=0.999,
                eps=1e-7,
                eps_hat=True,
                amsgrad=None,
                weight_decay=0.004,
                **DECOUPLED,
            ),
        ),
        {"weight_decay": 0.0},
    ),
    Case(
        "adamw-knobs",
        kt.adamw,
        "AdamW",
        dict(learning_rate=0.05, weight_decay=0.3, beta_1=0.8, beta_2=0.9, epsilon=0.1, amsgrad=True),
        (
            _build.adam,
            dict(
                learning_rate=0.05,
                b1=0.8,
                b2=0.9,
                eps=0.1,
                eps_hat=True,
                amsgrad="raw",
                weight_decay=0.3,
                **DECOUPLED,
            ),
        ),
        {"decoupled": False, "eps_hat": False},
    ),
]

cases = pytest.mark.parametrize("case", CASES, ids=str)


@cases
def test_compat_matches_keras(case):
    assert_matches(case, compat_factory(case))


@cases
def test_knob_settings_match_keras(case):
    # The builder with every knob spelled out is the same optimizer; the negative controls flip one knob.
    assert_matches(case, build_factory(case))


@pytest.mark.parametrize(("case", "knob"), negative_controls(CASES))
def test_wrong_knob_differs_from_keras(case, knob):
    assert_knob_matters(case, knob)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("use_ema", True),
        ("ema_overwrite_frequency", 10),
        ("loss_scale_factor", 128.0),
        ("gradient_accumulation_steps", 4),
    ],
)
def test_unsupported_options_raise_naming_the_option(option, value):
    with pytest.raises(ValueError, match=rf"^{option}={value!r} is not supported"):
        kt.adam(**{option: value})


def test_clipnorm_and_global_clipnorm_exclude_each_other():
    with pytest.raises(ValueError, match="Only one of `clipnorm` and `global_clipnorm`"):
        kt.sgd(clipnorm=1.0, global_clipnorm=1.0)


@pytest.mark.parametrize(
    ("ours_fn", "theirs"),
    [(kt.adagrad, "Adagrad"), (kt.rmsprop, "RMSprop"), (kt.adadelta, "Adadelta"), (kt.sgd, "SGD")]
    + [(kt.adam, "Adam"), (kt.adamw, "AdamW"), (kt.nadam, "Nadam")],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_signature_is_keras(ours_fn, theirs):
    # Keras's argument names, order and defaults, less `self` and `**kwargs`.
    os.environ.setdefault("KERAS_BACKEND", "jax")
    expected = framework_parameters(getattr(require("keras").optimizers, theirs), skip=1)
    assert [(n, d) for n, _, d in parameters(ours_fn)] == [(n, d) for n, _, d in expected]
