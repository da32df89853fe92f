"""The notebooks in notebooks/: each runs top to bottom in a fresh kernel, and is committed with its plots.

Each notebook checks its own claims with ``assert`` cells, so a notebook whose numbers drift fails here.
To re-execute a notebook, save its outputs in place and refresh its gallery image (docs/notebooks.md):
``python -m tests.test_notebooks notebooks/NAME.ipynb``.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest

from tests import background
from tests.background import Job

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = {
    "01_from_adagrad_to_adam",
    "02_adadelta_epsilon",
    "03_adam_bias_correction",
    "04_generalization",
    "05_diagnostics",
    "06_memory",
}
# The site's gallery (docs/notebooks.md): for each notebook, which of its plots (0-based, in order) it shows.
GALLERY = {
    "01_from_adagrad_to_adam": 3,
    "02_adadelta_epsilon": 5,
    "03_adam_bias_correction": 0,
    "04_generalization": 1,
    "05_diagnostics": 1,
    "06_memory": 0,
}
# Generous: a notebook takes under a minute on 2 cores; a shared CI machine can be several times slower.
CELL_TIMEOUT_S = 600


def execute(path: Path, cwd: Path):
    """Run the notebook at ``path`` in a fresh kernel (CPU only), in the working directory ``cwd``."""
    import nbclient
    import nbformat

    os.environ["JAX_PLATFORMS"] = "cpu"  # Inherited by the kernel: the notebooks are CPU-only.
    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own warning otherwise.
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return notebook


def plots(notebook) -> list[bytes]:
    """The PNGs a notebook's outputs hold, in order."""
    return [
        base64.b64decode(o["data"]["image/png"])
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]


def gallery_image(stem: str) -> Path:
    return ROOT / "docs" / "gallery" / f"{stem}.png"


def test_the_five_notebooks_are_there():
    assert EXPECTED <= {p.stem for p in NOTEBOOKS}


def _execute_all(directory):
    """Every notebook, each in a fresh kernel, by ``python -m tests.test_notebooks --out DIRECTORY``."""
    background.python(["-m", "tests.test_notebooks", "--out", str(directory), *map(str, NOTEBOOKS)])
    return directory


JOBS = {"executed": Job("notebooks", _execute_all, seconds=70)}


@pytest.fixture(scope="module")
def executed():
    return JOBS["executed"].result()


@pytest.mark.exhaustive  # Minutes of kernels.
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, executed):
    import nbformat

    failure = executed / f"{path.stem}.error"  # A CellExecutionError: the cell and its traceback.
    assert not failure.exists(), failure.read_text()
    notebook = nbformat.read(executed / path.name, as_version=4)
    errors = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_its_outputs(path):
    """Readers see the plots on the repository page: every cell ran, in order, and the plots are saved."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: some cells were never run"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{path.name}: not run top to bottom"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name}: saved with an error"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: saved without its plots"
    assert any("assert " in c.source for c in code), f"{path.name}: checks none of its claims"


@pytest.mark.parametrize("stem", sorted(GALLERY))
def test_gallery_shows_the_notebooks_own_plot(stem):
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    assert gallery_image(stem).read_bytes() == plots(notebook)[GALLERY[stem]]
    assert f"](gallery/{stem}.png)" in (ROOT / "docs" / "notebooks.md").read_text()


def main(argv: list[str]) -> None:
    import argparse

    import nbclient
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m tests.test_notebooks", description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write NAME.ipynb (or NAME.error) here instead of saving in place")
    args = parser.parse_args(argv)
    for name in args.notebooks:
        target = name.resolve()
        if args.out:  # The tests' run: each notebook in a fresh kernel, in a scratch directory of its own.
            cwd = args.out / f"{target.stem}.cwd"
            cwd.mkdir(parents=True)
            try:
                nbformat.write(execute(target, cwd), args.out / target.name)
            except nbclient.exceptions.CellExecutionError as error:
                (args.out / f"{target.stem}.error").write_text(str(error))
            continue
        executed = execute(target, target.parent)
        nbformat.write(executed, target)
        print(f"executed and saved {name}")
        if target.stem in GALLERY:
            gallery_image(target.stem).parent.mkdir(exist_ok=True)
            gallery_image(target.stem).write_bytes(plots(executed)[GALLERY[target.stem]])
            print(f"wrote {gallery_image(target.stem).relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
