"""Sphinx configuration of the adaptive_tx documentation site.

Build it offline and strictly (warnings are errors, every cross-reference must resolve)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Nothing is downloaded at build or view time: no intersphinx inventories, MathJax served from the built site
(``sphinx-mathjax-offline``), the notebooks rendered from their stored outputs (``tests/test_notebooks.py``
executes them). The build fails when a public name has no API page (``check_api_pages`` below).
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

import adaptive_tx

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

project = "adaptive_tx"
author = "the adaptive_tx authors"
copyright = "the adaptive_tx authors"  # noqa: A001 (Sphinx's name)
release = version = adaptive_tx.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into the site: no CDN.
    "sphinxarg.ext",  # The command line's page, generated from its argparse parser.
    "myst_nb",  # Markdown pages and the notebooks, from their stored outputs.
]

# Strict: -W turns warnings into errors, and every reference must resolve (-n or this). Without intersphinx
# (it downloads inventories) a reference to another project's name would not: the docstrings write those as
# literals, and the signatures show no annotations (below).
nitpicky = True

autosummary_generate = True
templates_path = ["_templates"]
autodoc_default_options = {"members": True, "undoc-members": False, "member-order": "bysource"}
# The signatures show names and defaults; each Args entry says what a value may be (the annotations spell
# out JAX's type aliases in full, several lines per argument).
autodoc_typehints = "none"
add_module_names = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Notebooks: rendered from the outputs committed with them, never executed here.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "adaptive_tx"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_last_updated_fmt = None
html_context = {"default_mode": "light"}  # One palette: the pictures are drawn on white.
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]


def prepare_sources(app: Sphinx, config) -> None:
    """Before the build reads anything: the notebooks copied where Sphinx reads sources, no stale API pages.

    notebooks/*.ipynb go to docs/notebooks/ (git-ignored), only those that changed. autosummary writes a page
    per name api.md lists and never deletes one, so docs/_autosummary/ starts empty: a name dropped from
    api.md cannot keep a stale page (and pass ``check_api_pages``).
    """
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for source in sorted((ROOT / "notebooks").glob("*.ipynb")):
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            shutil.copyfile(source, copy)
    shutil.rmtree(DOCS / "_autosummary", ignore_errors=True)


# The public names each must have an API page: the package's __all__ and the public modules' __all__.
PUBLIC_MODULES = [
    "adaptive_tx",
    "adaptive_tx.diagnostics",
    "adaptive_tx.sharding",
    "adaptive_tx.compat.torch",
    "adaptive_tx.compat.keras",
    "adaptive_tx.palette",
]


def public_names() -> list[str]:
    """Every public name, qualified: ``adaptive_tx.adam``, ``adaptive_tx.diagnostics.track``, ..."""
    return [f"{module}.{name}" for module in PUBLIC_MODULES for name in importlib.import_module(module).__all__]


def missing_api_pages(documented: set[str]) -> list[str]:
    """The public names that are not among the ``documented`` objects."""
    return [name for name in public_names() if name not in documented]


def check_api_pages(app: Sphinx, env) -> None:
    """Warn (an error under -W) for each public name that no page documents."""
    for name in missing_api_pages(set(env.get_domain("py").objects)):
        logging.getLogger(__name__).warning("the public name %s has no API page (docs/api.md)", name)


def field_comment(app: Sphinx, what: str, name: str, obj, options, lines: list[str]) -> None:
    """A NamedTuple field's page text: its symbol comment in the source, not "Alias for field number N"."""
    if what != "attribute" or not lines or not lines[0].startswith("Alias for field number"):
        return
    owner, field = name.rsplit(".", 1)
    module, _, cls = owner.rpartition(".")
    source = inspect.getsource(getattr(importlib.import_module(module), cls))
    match = re.search(rf"^\s+{field}: [^#\n]*#(?: type: ignore\[\w+\]\s+#)? (.*)$", source, flags=re.M)
    if match:  # Plain text in the source: escape reST's markup characters.
        lines[:] = [re.sub(r"([|*`_\\])", r"\\\1", match.group(1))]


def setup(app: Sphinx) -> None:
    app.connect("config-inited", prepare_sources)
    app.connect("env-check-consistency", check_api_pages)
    app.connect("autodoc-process-docstring", field_comment)
