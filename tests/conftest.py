"""Test-wide settings: strict dtype and rank promotion, JAX's persistent compilation cache, the background jobs,
and no silent skips under CI."""

import os
import tempfile
from pathlib import Path

import jax

from tests import background
from tests.background import Job

# Any implicit promotion (bf16 * f32, f32 ** int32, ...) inside the library is a bug: the library casts on
# purpose. Rank promotion (broadcasting (3,) against (2, 3) silently) is also an error in the tests.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


# ----------------------------------------------------------------------------- README's pytest, the whole matrix
def pytest_configure(config):
    # pyproject's addopts leave out the tests marked exhaustive; a test named by its id runs whatever its
    # marker (``pytest tests/test_registry.py::test_jit_equals_eager[adam]``), unless -m is given as well.
    args = [str(a) for a in config.invocation_params.args]
    if not any(a.startswith("-m") for a in args) and any("::" in a for a in args):
        config.option.markexpr = ""
    _persistent_compilation_cache(config)


# ----------------------------------------------------------------------------- compile once, reuse everywhere
def _persistent_compilation_cache(config):
    """JAX's persistent compilation cache, for every compile however fast, in ``.pytest_cache/d/jax``.

    Its key is the compiled program itself (the lowered module, the compile options, the devices, the JAX
    version), not the Python function: two tests that build the same transformation and jit the same step
    compile it once, and so do the fresh processes the workers start, which inherit the setting through the
    environment. A second run of the suite compiles almost nothing. ``pytest --cache-clear`` empties it;
    without pytest's cache plugin a temporary directory serves one run.
    """
    cache = getattr(config, "cache", None)
    directory = cache.mkdir("jax") if cache is not None else Path(tempfile.mkdtemp(prefix="adaptive_tx-jax-"))
    settings = {
        "jax_compilation_cache_dir": str(directory),
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # For the workers' processes and the notebooks' kernels.


# ----------------------------------------------------------------------------- background jobs
def _jobs(item) -> list[Job]:
    """The jobs (tests/background.py) whose results ``item`` reads: its module's ``JOBS``, a job or a tuple of
    jobs per fixture name."""
    jobs = getattr(getattr(item, "module", None), "JOBS", {})
    used = [job for fixture, job in jobs.items() if fixture in getattr(item, "fixturenames", ())]
    return [job for entry in used for job in (entry if isinstance(entry, tuple) else (entry,))]


def pytest_collection_modifyitems(session, config, items):
    # The tests that read a job's results go last, the longest job's first, so that the jobs run meanwhile.
    readers = sorted((i for i in items if _jobs(i)), key=lambda i: -max(job.seconds for job in _jobs(i)))
    items[:] = [i for i in items if not _jobs(i)] + readers


def pytest_collection_finish(session):
    # Under pytest-xdist each worker collects every test but runs only some: there a job starts when its
    # first reader asks for it (``--dist loadfile`` keeps a module's tests, so its job's readers, on one worker).
    if not session.config.option.collectonly and not hasattr(session.config, "workerinput"):
        for job in sorted({job for item in session.items for job in _jobs(item)}, key=lambda job: -job.seconds):
            job.start()


def pytest_terminal_summary(terminalreporter):
    if ran := [job for job in background.STARTED if job.took is not None]:
        terminalreporter.write_line("background jobs: " + ", ".join(f"{job.name} {job.took:.0f} s" for job in ran))


# ----------------------------------------------------------------------------- CI: no silent skips
# Under CI (CI=true) every requirement is installed, so a skipped test means a broken set-up: fail the run.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    background.stop()
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _skipped and exitstatus == 0:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1


# Scripts that other tests run in fresh processes: importing the checkpoint workers needs orbax, and the
# sharding workers set XLA_FLAGS (8 simulated devices) for their own process only.
collect_ignore = ["checkpoint_worker.py", "resharding_worker.py", "sharding_worker.py", "zero_worker.py"]
