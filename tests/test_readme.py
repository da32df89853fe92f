"""README.md's Python examples run as written."""

import re
from pathlib import Path

import jax
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# Top-level blocks only: an indented block (in a list) is a fragment that needs context.
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code):
    namespace: dict = {}
    # A user's defaults, not the suite's strict promotion settings (tests/conftest.py).
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        exec(compile(code, str(README), "exec"), namespace)
    if "loss" in namespace:  # The training-step example must actually train.
        assert float(namespace["loss"]) < 1e-2
    jax.block_until_ready(jax.tree.leaves(namespace.get("params", {})))


def test_readme_has_both_commands():
    text = README.read_text()
    assert 'pip install -e ".[dev]" && adaptive-tx race' in text
    assert "\npytest\n" in text
    assert len(BLOCKS) >= 2


def test_ci_runs_readmes_test_command_and_the_whole_matrix_it_names():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "\nrun_pytest --cov " in ci  # README's `pytest`, measuring coverage.
    assert "\nrun_pytest -m exhaustive -n 0 --cov --cov-append\n" in ci
    assert "pytest -m exhaustive -n 0" in README.read_text()


def test_readme_recipe_for_optax_checkpoints_is_the_tested_helper():
    import inspect
    import textwrap

    from tests.test_interop import move_by_name

    source = textwrap.indent(inspect.getsource(move_by_name), "  ")
    assert source in README.read_text()
