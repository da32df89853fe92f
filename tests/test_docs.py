"""The documentation site: README's build command passes with warnings as errors, and three of its pages (the
home page, an API page, a notebook) load in headless Chromium with nothing fetched from outside the site, no
console errors, every image loaded and the math rendered (tests/docs_worker.py builds and visits them).

The screenshots land in ``docs/_build/screenshots/`` (git-ignored) for a person to look at."""

import shutil

import pytest

from tests import background
from tests.background import Job
from tests.docs_worker import PAGES
from tests.helpers import module_from_file

pytestmark = pytest.mark.exhaustive  # Sphinx and Playwright (the docs extra) and Chromium, which CI installs.

ROOT = background.ROOT
SCREENSHOTS = ROOT / "docs" / "_build" / "screenshots"


def _build_and_visit(directory):
    report = background.report(["tests/docs_worker.py", str(directory), background.REPORT], directory, timeout=600)
    if "pages" in report:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for record in report["pages"].values():
            shutil.copy(record["screenshot"], SCREENSHOTS)
    return report


JOBS = {"site": Job("docs site", _build_and_visit, seconds=45)}


@pytest.fixture(scope="module")
def site():
    report = JOBS["site"].result()
    if "missing" in report:
        pytest.skip(f"the browser test needs {report['missing']}")
    return report


def test_the_site_builds_with_warnings_as_errors(site):
    build = site["build"]
    assert build["returncode"] == 0 and build["warnings"] == [], build["output"]


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_with_nothing_from_outside_the_site(site, page):
    record = site["pages"][page]
    assert record["status"] == 200
    assert record["blocked"] == []
    assert record["failed"] == []
    assert record["console errors"] == [] and record["page errors"] == []


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loads(site, page):
    record = site["pages"][page]
    assert record["broken images"] == []
    if page in ("home", "notebook"):  # The race GIF; the notebook's plots.
        assert record["images"] >= 1


@pytest.mark.parametrize("page", PAGES)
def test_math_renders(site, page):
    record = site["pages"][page]
    assert record["raw tex"] == []
    assert record["math"] >= 3  # MathJax ran and typeset the page's formulas (-1: MathJax never loaded).


def _conf():
    """docs/conf.py as a module (it imports Sphinx, so only with the docs extra)."""
    pytest.importorskip("sphinx")
    return module_from_file(ROOT / "docs" / "conf.py", "docs_conf")


def test_the_build_names_a_public_name_with_no_api_page():
    conf = _conf()
    names = conf.public_names()
    assert {"adaptive_tx.adam", "adaptive_tx.diagnostics.track", "adaptive_tx.compat.keras.sgd"} <= set(names)
    assert "adaptive_tx.sharding.zero_spec" in names and "adaptive_tx.palette.COLORS" in names
    assert conf.missing_api_pages(set(names)) == []
    assert conf.missing_api_pages(set(names) - {"adaptive_tx.sharding.zero_spec"}) == ["adaptive_tx.sharding.zero_spec"]
