"""adaptive_tx.compat.torch against the real torch.optim (float64, 45 steps, tests/parity.py)."""

import pytest

import adaptive_tx.compat.torch as tt
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

CASES = [
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
        {"weight_decay": 0.0},
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

cases = pytest.mark.parametrize("case", CASES, ids=str)


@cases
def test_compat_matches_torch(case):
    assert_matches(case, compat_factory(case))


@cases
def test_knob_settings_match_torch(case):
    # The builder with every knob spelled out is the same optimizer; the negative controls flip one knob.
    assert_matches(case, build_factory(case))


@pytest.mark.parametrize(("case", "knob"), negative_controls(CASES))
def test_wrong_knob_differs_from_torch(case, knob):
    assert_knob_matters(case, knob)


def test_nesterov_needs_momentum_and_no_dampening():
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        tt.sgd(momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        tt.sgd(nesterov=True)


@pytest.mark.parametrize("option", ["foreach", "fused", "differentiable"])
def test_execution_options_are_accepted_and_type_checked(option):
    tt.adam(**{option: True})
    with pytest.raises(TypeError, match=option):
        tt.adam(**{option: "yes"})


@pytest.mark.parametrize(
    ("ours_fn", "theirs"),
    [(tt.adagrad, "Adagrad"), (tt.rmsprop, "RMSprop"), (tt.adadelta, "Adadelta"), (tt.sgd, "SGD")]
    + [(tt.adam, "Adam"), (tt.adamw, "AdamW"), (tt.nadam, "NAdam")],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_signature_is_torchs(ours_fn, theirs):
    # PyTorch's argument names, order, kinds and defaults, less `self` and `params`.
    assert parameters(ours_fn) == framework_parameters(getattr(require("torch").optim, theirs), skip=2)
