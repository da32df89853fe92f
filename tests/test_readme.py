"""README.md and the site's pages (docs/*.md): their Python examples run as written and print what the page
shows after them; README stays short and links only to pages that exist."""

import contextlib
import io
import re
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# A top-level Python block (an indented one, in a list, is a fragment that needs context), and the plain block
# right after it, if any: what it prints.
EXAMPLE = re.compile(r"^```python\n(.*?)^```\n(?:\s*^```\n(.*?)^```)?", flags=re.S | re.M)


def _examples() -> list:
    return [
        pytest.param(page, code, printed, id=f"{page.relative_to(ROOT)}:{i}")
        for page in PAGES
        for i, (code, printed) in enumerate(EXAMPLE.findall(page.read_text()))
    ]


@pytest.mark.parametrize(("page", "code", "printed"), _examples())
def test_example_runs_and_prints_what_the_page_shows(page, code, printed):
    namespace: dict = {}
    stdout = io.StringIO()
    # A user's defaults, not the suite's strict promotion settings (tests/conftest.py).
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"), contextlib.redirect_stdout(stdout):
        exec(compile(code, str(page), "exec"), namespace)
    if "loss" in namespace:  # A training-step example must actually train.
        assert float(namespace["loss"]) < 1e-2
    jax.block_until_ready(jax.tree.leaves(namespace.get("params", {})))
    if printed:
        assert stdout.getvalue() == printed


def test_readme_has_both_commands_and_a_training_example():
    text = README.read_text()
    assert 'pip install -e ".[dev]" && adaptive-tx race' in text
    assert "\npytest\n" in text
    assert [p for p in _examples() if p.values[0] == README]


def test_readme_fits_on_two_screens():
    assert len(README.read_bytes()) < 10_000


def test_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\(([^)#]+)\)", README.read_text())
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    assert [link for link in local if not (ROOT / link).is_file()] == []


def test_readme_gives_the_sites_build_command():
    from tests.docs_worker import BUILD

    command = " ".join(["python", *BUILD[1:], "docs/_build/html"])
    assert f'pip install -e ".[docs]" && {command}' in README.read_text()


def test_ci_runs_readmes_test_command_and_the_whole_matrix_the_site_names():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nrun_pytest --cov " in ci  # README's `pytest`, measuring coverage.
    assert "\nrun_pytest -m exhaustive -n 0 --cov --cov-append\n" in ci
    assert "pytest -m exhaustive -n 0" in README.read_text()
    assert "pytest -m exhaustive -n 0" in (DOCS / "development.md").read_text()


def test_numerics_page_recipe_for_optax_checkpoints_is_the_tested_helper():
    import inspect
    import textwrap

    from tests.test_interop import move_by_name

    source = textwrap.indent(inspect.getsource(move_by_name), "  ")
    assert source in (DOCS / "numerics.md").read_text()


# The command line's page shows what `adaptive-tx race` and `adaptive-tx train` print, run as written.
COMMANDS = re.findall(r"^```\n\$ (adaptive-tx .*?)\n(.*?)^```", (DOCS / "cli.md").read_text(), flags=re.S | re.M)


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        pytest.param(*c, id=c[0], marks=[pytest.mark.exhaustive] if "train" in c[0] else [])  # train: 15 s
        for c in COMMANDS
    ],
)
def test_cli_page_shows_what_the_command_prints(command, printed, tmp_path, monkeypatch, capsys):
    from adaptive_tx import cli

    monkeypatch.chdir(tmp_path)  # It writes its picture where it runs.
    assert cli.main(command.split()[1:]) == 0
    assert capsys.readouterr().out == printed


def test_cli_page_shows_both_commands():
    assert [command for command, _ in COMMANDS] == ["adaptive-tx race", "adaptive-tx train"]
