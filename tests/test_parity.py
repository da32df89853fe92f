"""adaptive_tx.compat against the real frameworks: torch.optim and keras.optimizers (JAX backend), float64,
45 steps (the machinery is in tests/parity.py).

Every case runs twice, as the compat function and as the knob-explicit builder call it makes; each negative
control sets one knob wrong and must move away from the framework.
"""

import pytest

import adaptive_tx.compat.keras as kt
import adaptive_tx.compat.torch as tt
from adaptive_tx.compat import _build
from tests.parity import (
    Case,
    Schedule,
    Wrong,
    assert_knob_matters,
    assert_matches,
    build_factory,
    case_params,
    compat_factory,
    framework_module,
    framework_parameters,
    negative_controls,
    parameters,
)

# The real frameworks (the parity extra): in the whole matrix, which CI runs with them installed.
pytestmark = pytest.mark.exhaustive

TORCH_CASES = [
    Case(
        "adagrad-defaults",
        tt.adagrad,
        "Adagrad",
        {},
        (_build.adagrad, dict(learning_rate=1e-2, eps=1e-10, initial_accumulator=0.0, eps_in_sqrt=False)),
        # With eps 1e-10 the placement hardly matters; the accumulator's start does.
        {"initial_accumulator": 0.1},
    ),
    Case(
        "adagrad-knobs",
        tt.adagrad,
        "Adagrad",
        dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.5, eps=0.1),
        (
            _build.adagrad,
            dict(
                learning_rate=0.1,
                eps=0.1,
                initial_accumulator=0.5,
                eps_in_sqrt=False,
                lr_decay=0.05,
                weight_decay=0.1,
            ),
        ),
        {"eps_in_sqrt": True, "initial_accumulator": 0.0, "lr_decay": 0.0, "decoupled": True},
    ),
    Case(
        "rmsprop-defaults",
        tt.rmsprop,
        "RMSprop",
        {},
        (_build.rmsprop, dict(learning_rate=1e-2, decay=0.99, eps=1e-8, eps_in_sqrt=False, centered=False)),
        {"decay": 0.9},
    ),
    Case(
        "rmsprop-knobs",
        tt.rmsprop,
        "RMSprop",
        dict(lr=0.01, alpha=0.9, eps=0.1, weight_decay=0.1, momentum=0.5, centered=True),
        (
            _build.rmsprop,
            dict(
                learning_rate=0.01,
                decay=0.9,
                eps=0.1,
                eps_in_sqrt=False,
                centered=True,
                momentum=0.5,
                weight_decay=0.1,
            ),
        ),
        {"eps_in_sqrt": True, "centered": False, "momentum": 0.0, "decoupled": True},
    ),
    Case(
        "rmsprop-momentum-schedule",
        tt.rmsprop,
        "RMSprop",
        dict(alpha=0.9, eps=0.1, momentum=0.8),
        (_build.rmsprop, dict(decay=0.9, eps=0.1, eps_in_sqrt=False, centered=False, momentum=0.8)),
        {"lr_in_buffer": True},  # PyTorch keeps the learning rate outside its momentum buffer.
        schedule=Schedule(0.05, 0.9),
    ),
    Case(
        "adadelta-defaults",
        tt.adadelta,
        "Adadelta",
        {},
        (_build.adadelta, dict(learning_rate=1.0, rho=0.9, eps=1e-6)),
        {"eps": 1e-5},
    ),
    Case(
        "adadelta-knobs",
        tt.adadelta,
        "Adadelta",
        dict(lr=0.5, rho=0.8, eps=0.1, weight_decay=0.1),
        (_build.adadelta, dict(learning_rate=0.5, rho=0.8, eps=0.1, weight_decay=0.1)),
        {"decoupled": True},
    ),
    Case(
        "sgd-defaults",
        tt.sgd,
        "SGD",
        {},
        (
            _build.sgd,
            dict(learning_rate=1e-3, momentum=0.0, dampening=0.0, nesterov=False, first_step_undampened=True),
        ),
        {"learning_rate": 1e-2},
    ),
    Case(
        "sgd-knobs",
        tt.sgd,
        "SGD",
        dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1),
        (
            _build.sgd,
            dict(
                learning_rate=0.05,
                momentum=0.8,
                dampening=0.3,
                nesterov=False,
                first_step_undampened=True,
                weight_decay=0.1,
            ),
        ),
        {"first_step_undampened": False, "decoupled": True, "dampening": 0.0},
    ),
    Case(
        "sgd-nesterov-schedule",
        tt.sgd,
        "SGD",
        dict(momentum=0.8, nesterov=True, weight_decay=0.1),
        (
            _build.sgd,
            dict(momentum=0.8, dampening=0.0, nesterov=True, first_step_undampened=True, weight_decay=0.1),
        ),
        {"nesterov": False, "lr_in_buffer": True},
        schedule=Schedule(0.05, 0.9),
    ),
    Case(
        "adam-defaults",
        tt.adam,
        "Adam",
        {},
        (_build.adam, dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, eps_hat=False, amsgrad=None)),
        {"b1": 0.8},
    ),
    Case(
        "adam-knobs",
        tt.adam,
        "Adam",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.1, amsgrad=True),
        (
            _build.adam,
            dict(learning_rate=0.05, b1=0.8, b2=0.9, eps=0.1, eps_hat=False, amsgrad="raw", weight_decay=0.1),
        ),
        {"eps_hat": True, "amsgrad": "corrected", "decoupled": True},
    ),
    Case(
        "adam-maximize",
        tt.adam,
        "Adam",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, maximize=True),
        (_build.adam, dict(learning_rate=0.05, b1=0.8, b2=0.9, eps=0.1, eps_hat=False, amsgrad=None, maximize=True)),
        {"maximize": False},
    ),
    Case(
        "nadam-defaults",
        tt.nadam,
        "NAdam",
        {},
        (_build.nadam, dict(learning_rate=2e-3, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3)),
        {"momentum_decay": float("inf")},  # Optax's nadam.
    ),
    Case(
        "nadam-knobs",
        tt.nadam,
        "NAdam",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.1, momentum_decay=0.1),
        (_build.nadam, dict(learning_rate=0.05, b1=0.8, b2=0.9, eps=0.1, momentum_decay=0.1, weight_decay=0.1)),
        {"momentum_decay": 1.0, "decoupled": True},
    ),
    Case(
        "nadam-decoupled",
        tt.nadam,
        "NAdam",
        dict(lr=0.05, weight_decay=0.3, decoupled_weight_decay=True),
        (
            _build.nadam,
            dict(learning_rate=0.05, b1=0.9, b2=0.999, eps=1e-8, momentum_decay=4e-3, weight_decay=0.3, decoupled=True),
        ),
        {"decoupled": False},
    ),
    Case(
        "adamw-defaults",
        tt.adamw,
        "AdamW",
        {},
        (
            _build.adam,
            dict(
                learning_rate=1e-3,
                b1=0.9,
                b2=0.999,
                eps=1e-8,
                eps_hat=False,
                amsgrad=None,
                weight_decay=1e-2,
                decoupled=True,
            ),
        ),
        {"weight_decay": Wrong(0.0, also={"decoupled": False})},
    ),
    Case(
        "adamw-knobs",
        tt.adamw,
        "AdamW",
        dict(lr=0.05, betas=(0.8, 0.9), eps=0.1, weight_decay=0.3, amsgrad=True),
        (
            _build.adam,
            dict(
                learning_rate=0.05,
                b1=0.8,
                b2=0.9,
                eps=0.1,
                eps_hat=False,
                amsgrad="raw",
                weight_decay=0.3,
                decoupled=True,
            ),
        ),
        {"decoupled": False, "amsgrad": None},
    ),
]

# Keras decays every optimizer's weights decoupled, whenever it has a weight decay.
DECOUPLED = dict(decoupled=True)

KERAS_CASES = [
    Case(
        "adagrad-defaults",
        kt.adagrad,
        "Adagrad",
        {},
        (_build.adagrad, dict(learning_rate=1e-3, eps=1e-7, initial_accumulator=0.1, eps_in_sqrt=True)),
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
            dict(learning_rate=1e-3, decay=0.9, eps=1e-7, eps_in_sqrt=True, centered=False),
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
        {
            "eps_in_sqrt": False,
            "centered": False,
            "momentum": Wrong(0.0, also={"lr_in_buffer": False}),
            "decoupled": False,
        },
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
        (_build.adadelta, dict(learning_rate=1e-3, rho=0.95, eps=1e-7)),
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
            dict(learning_rate=0.01, momentum=0.0, dampening=0.0, nesterov=False, first_step_undampened=False),
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
            dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7, eps_hat=True, amsgrad=None),
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
        (_build.nadam, dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-7, momentum_decay=1.0)),
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
        {"weight_decay": Wrong(0.0, also={"decoupled": False})},
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

CASES = TORCH_CASES + KERAS_CASES
cases = pytest.mark.parametrize(("framework", "case"), case_params(CASES))


@cases
def test_compat_matches_framework(framework, case):
    assert case.library == framework
    assert_matches(case, compat_factory(case))


@cases
def test_knob_settings_match_framework(framework, case):
    # The builder with every knob spelled out is the same optimizer; the negative controls flip one knob.
    assert case.library == framework
    assert_matches(case, build_factory(case))


@pytest.mark.parametrize(("framework", "case", "knob"), negative_controls(CASES))
def test_wrong_knob_differs_from_framework(framework, case, knob):
    assert case.library == framework
    assert_knob_matters(case, knob)


SIGNATURES = {
    "torch": [(tt.adagrad, "Adagrad"), (tt.rmsprop, "RMSprop"), (tt.adadelta, "Adadelta"), (tt.sgd, "SGD")]
    + [(tt.adam, "Adam"), (tt.adamw, "AdamW"), (tt.nadam, "NAdam")],
    "keras": [(kt.adagrad, "Adagrad"), (kt.rmsprop, "RMSprop"), (kt.adadelta, "Adadelta"), (kt.sgd, "SGD")]
    + [(kt.adam, "Adam"), (kt.adamw, "AdamW"), (kt.nadam, "Nadam")],
}


@pytest.mark.parametrize(
    ("framework", "ours_fn", "theirs"),
    [pytest.param(fw, fn, cls, id=f"{fw}-{cls}") for fw, pairs in SIGNATURES.items() for fn, cls in pairs],
)
def test_signature_is_the_frameworks(framework, ours_fn, theirs):
    cls = getattr(framework_module(framework), theirs)
    if framework == "torch":
        # PyTorch's argument names, order, kinds and defaults, less `self` and `params`.
        assert parameters(ours_fn) == framework_parameters(cls, skip=2)
    else:
        # Keras's argument names, order and defaults, less `self` and `**kwargs`.
        expected = framework_parameters(cls, skip=1)
        assert [(n, d) for n, _, d in parameters(ours_fn)] == [(n, d) for n, _, d in expected]


# ----------------------------------------------------------------------------- PyTorch only


def test_torch_nesterov_needs_momentum_and_no_dampening():
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        tt.sgd(momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        tt.sgd(nesterov=True)


@pytest.mark.parametrize("option", ["foreach", "fused", "differentiable"])
def test_torch_execution_options_are_accepted_and_type_checked(option):
    tt.adam(**{option: True})
    with pytest.raises(TypeError, match=option):
        tt.adam(**{option: "yes"})


# ----------------------------------------------------------------------------- Keras only


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("use_ema", True),
        ("ema_overwrite_frequency", 10),
        ("loss_scale_factor", 128.0),
        ("gradient_accumulation_steps", 4),
    ],
)
def test_keras_unsupported_options_raise_naming_the_option(option, value):
    with pytest.raises(ValueError, match=rf"^{option}={value!r} is not supported"):
        kt.adam(**{option: value})


def test_keras_clipnorm_and_global_clipnorm_exclude_each_other():
    with pytest.raises(ValueError, match="Only one of `clipnorm` and `global_clipnorm`"):
        kt.sgd(clipnorm=1.0, global_clipnorm=1.0)
