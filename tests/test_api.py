"""The public API: names, signatures, defaults and docstrings, as docs/optimizers.md and docs/api.md document them."""

import importlib
import inspect
import re
import types
import typing

import pytest
from jax.typing import DTypeLike

import adaptive_tx as atx
from adaptive_tx._checks import StateDtype

OPTIMIZERS = ["adagrad", "rmsprop", "adadelta", "momentum", "adam"]
BLOCKS = ["scale_by_adagrad", "scale_by_rms", "scale_by_adadelta", "scale_by_momentum", "scale_by_adam"]

# The lecture's arguments of each optimizer: (positional-or-keyword, keyword-only) defaults. The optimizers
# take more (their blocks' knobs), all keyword-only.
CONTRACT = {
    "adagrad": ({"learning_rate": inspect.Parameter.empty}, {"eps": 1e-8, "initial_accumulator": 0.0}),
    "rmsprop": (
        {"learning_rate": inspect.Parameter.empty},
        {"decay": 0.9, "eps": 1e-8, "initial_scale": 0.0},
    ),
    "adadelta": (
        {"learning_rate": 1.0},
        {"rho": 0.9, "eps": 1e-6, "initial_scale": 0.0, "initial_delta": 0.0},
    ),
    "momentum": (
        {"learning_rate": inspect.Parameter.empty},
        {"beta": 0.9, "dampening": None, "nesterov": False},
    ),
    "adam": (
        {"learning_rate": inspect.Parameter.empty},
        {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "initial_mu": 0.0, "initial_nu": 0.0},
    ),
    "bias_correction": ({"decay": inspect.Parameter.empty}, {}),
}


def test_all_lists_exactly_the_public_names():
    # Submodules (problems, cli, compat) appear as attributes once imported; they are not names of the API.
    public = {n for n, v in vars(atx).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert sorted(atx.__all__) == sorted(public)
    assert len(set(atx.__all__)) == len(atx.__all__)
    assert set(OPTIMIZERS + BLOCKS + ["bias_correction"]) <= set(atx.__all__)


@pytest.mark.parametrize("name", list(CONTRACT))
def test_signature_keeps_the_lectures_arguments(name):
    positional, keyword_only = CONTRACT[name]
    params = inspect.signature(getattr(atx, name)).parameters
    got_positional = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}
    got_keyword = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert got_positional == positional
    assert {n: got_keyword.get(n, "missing") for n in keyword_only} == keyword_only
    assert set(params) == set(positional) | set(got_keyword)  # Nothing else: no *args, no **kwargs.


# Knobs beyond the lecture, keyword-only, with defaults that keep the lecture's form; each optimizer takes
# its block's.
_ROUNDING = {"state_rounding": "nearest", "rounding_seed": 0}
KNOBS = {
    "scale_by_adagrad": {"eps_in_sqrt": True, "accumulator_dtype": None, **_ROUNDING},
    "scale_by_rms": {"eps_in_sqrt": True, "centered": False, "accumulator_dtype": None, **_ROUNDING},
    "scale_by_adadelta": {"accumulator_dtype": None, **_ROUNDING},
    "scale_by_momentum": {"first_step_undampened": False, "accumulator_dtype": None, **_ROUNDING},
    "scale_by_adam": {
        "nesterov": False,
        "eps_hat": False,
        "amsgrad": None,
        "mu_dtype": None,
        "nu_dtype": None,
        **_ROUNDING,
    },
}
# Beyond its block's: RMSprop's momentum on the step, as optax.rmsprop places it; Adadelta's coupled weight
# decay, as optax.adadelta; Optax's heavy-ball keyword, named as in optax.sgd (optimizer) and optax.trace (block).
OPTIMIZER_ONLY = {
    "rmsprop": {"momentum": None, "nesterov": False},
    "adadelta": {"weight_decay": 0.0, "weight_decay_mask": None},
    "momentum": {"momentum": None},
}
BLOCK_ONLY = {"scale_by_momentum": {"decay": None}}


@pytest.mark.parametrize(("optimizer", "block"), list(zip(OPTIMIZERS, BLOCKS, strict=True)))
def test_optimizer_takes_its_blocks_arguments_all_keyword_only(optimizer, block):
    opt = inspect.signature(getattr(atx, optimizer)).parameters
    blk = inspect.signature(getattr(atx, block)).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in blk.values()), block
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in opt.items() if n != "learning_rate"), optimizer
    opt_defaults = {n: p.default for n, p in opt.items() if n != "learning_rate"}
    blk_defaults = {n: p.default for n, p in blk.items() if n not in BLOCK_ONLY.get(block, {})}
    assert opt_defaults == {**blk_defaults, **OPTIMIZER_ONLY.get(optimizer, {})}
    assert {n: blk_defaults[n] for n in KNOBS[block]} == KNOBS[block]


# Schedules, masks and string options: not arrays.
_NOT_ARRAYS = ("learning_rate", "amsgrad", "state_rounding", "weight_decay", "weight_decay_mask")


def test_hyperparameters_are_typed_as_array_likes():
    # jax.typing's ArrayLike / DTypeLike in the signatures, as Optax types its own; state dtypes take
    # quantized(...) too.
    assert set(typing.get_args(StateDtype)) == {*typing.get_args(DTypeLike), atx.QuantizedDtype, type(None)}
    for name in [*OPTIMIZERS, *BLOCKS, "bias_correction", "scale_by_nadam"]:
        for param in inspect.signature(getattr(atx, name)).parameters.values():
            if param.name.endswith("dtype"):
                assert str(param.annotation) == "_checks.StateDtype", (name, param.name)
            elif param.name not in _NOT_ARRAYS and not isinstance(param.default, bool):
                assert "ArrayLike" in str(param.annotation), (name, param.name)


@pytest.mark.parametrize("name", [*OPTIMIZERS, "bias_correction", "scale_by_nadam"])
def test_optimizer_docstring_has_equation_args_example_and_references(name):
    doc = inspect.getdoc(getattr(atx, name))
    assert ".. math::" in doc
    for section in ("Args:", "Returns:", "Examples:", "References:"):
        assert section in doc, f"{name} lacks {section}"
    args = doc.split("Args:")[1].split("Returns:")[0]
    for param in inspect.signature(getattr(atx, name)).parameters:
        assert f"  {param}:" in args, f"{name} does not document {param}"
    assert "https://" in doc.split("References:")[1]


@pytest.mark.parametrize(("optimizer", "block"), [*zip(OPTIMIZERS, BLOCKS, strict=True), ("adam", "scale_by_nadam")])
def test_block_docstring_points_to_the_optimizer_and_has_args_returns_and_an_example(optimizer, block):
    doc = inspect.getdoc(getattr(atx, block))
    assert f":func:`{optimizer}`" in doc.splitlines()[0] or block == "scale_by_nadam"
    for section in ("Args:", "Returns:", "Examples:"):
        assert section in doc, f"{block} lacks {section}"
    assert ">>> " in doc.split("Examples:")[1]
    args = doc.split("Args:")[1].split("Returns:")[0]
    for param in inspect.signature(getattr(atx, block)).parameters:
        assert f"  {param}:" in args, f"{block} does not document {param}"


def test_states_are_namedtuples():
    for name in atx.__all__:
        if name.endswith("State"):
            cls = getattr(atx, name)
            assert issubclass(cls, tuple) and hasattr(cls, "_fields"), name


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_compat_modules_export_the_six_with_docstrings(framework):
    module = importlib.import_module(f"adaptive_tx.compat.{framework}")
    assert sorted(module.__all__) == ["adadelta", "adagrad", "adam", "adamw", "nadam", "rmsprop", "sgd"]
    for name in module.__all__:
        doc = inspect.getdoc(getattr(module, name))
        for section in (".. math::", "Args:", "Returns:", "References:"):
            assert section in doc, f"{framework}.{name} lacks {section}"
        args = doc.split("Args:")[1].split("Returns:")[0]
        for param in inspect.signature(getattr(module, name)).parameters:
            # Alone ("  lr:") or in an entry that names several ("  foreach, fused: ...").
            assert re.search(rf"(^|\s|,){param}[,:]", args), f"{framework}.{name} does not document {param}"
