"""The public API is the contract of ../shared/DESIGN.md: names, signatures, defaults, docstrings."""

import importlib
import inspect
import types

import pytest

import adaptive_tx as atx

OPTIMIZERS = ["adagrad", "rmsprop", "adadelta", "momentum", "adam"]
BLOCKS = ["scale_by_adagrad", "scale_by_rms", "scale_by_adadelta", "scale_by_momentum", "scale_by_adam"]

# The signatures of DESIGN.md's "Public API", verbatim: (positional-or-keyword, keyword-only) defaults.
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
def test_signature_matches_design(name):
    positional, keyword_only = CONTRACT[name]
    params = inspect.signature(getattr(atx, name)).parameters
    got_positional = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD}
    got_keyword = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert got_positional == positional
    assert got_keyword == keyword_only


# Knobs beyond the lecture (issue 3), keyword-only on the blocks, with defaults that keep the lecture's form.
KNOBS = {
    "scale_by_adagrad": {"eps_in_sqrt": True, "accumulator_dtype": None},
    "scale_by_rms": {"eps_in_sqrt": True, "centered": False, "accumulator_dtype": None},
    "scale_by_adadelta": {"accumulator_dtype": None},
    "scale_by_momentum": {"first_step_undampened": False, "accumulator_dtype": None},
    "scale_by_adam": {"eps_hat": False, "amsgrad": None, "mu_dtype": None, "nu_dtype": None},
}


@pytest.mark.parametrize(("optimizer", "block"), list(zip(OPTIMIZERS, BLOCKS, strict=True)))
def test_block_takes_the_optimizers_hyperparameters_with_the_same_defaults(optimizer, block):
    opt = {n: p.default for n, p in inspect.signature(getattr(atx, optimizer)).parameters.items()}
    opt.pop("learning_rate")
    params = inspect.signature(getattr(atx, block)).parameters
    knobs = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {n: p.default for n, p in params.items() if n not in knobs} == opt
    assert knobs == KNOBS[block]


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


@pytest.mark.parametrize(("optimizer", "block"), list(zip(OPTIMIZERS, BLOCKS, strict=True)))
def test_block_docstring_points_to_the_optimizer_and_names_its_knobs(optimizer, block):
    doc = inspect.getdoc(getattr(atx, block))
    assert f":func:`{optimizer}`" in doc.splitlines()[0]
    for knob in KNOBS[block]:
        assert f"``{knob}" in doc, f"{block} does not document {knob}"


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
            assert f"  {param}:" in args, f"{framework}.{name} does not document {param}"
