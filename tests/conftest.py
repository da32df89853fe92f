"""Test-wide JAX settings: strict dtype promotion and rank promotion, so any implicit cast is a failure."""

import os

import jax

# Any implicit promotion (bf16 * f32, f32 ** int32, ...) inside the library is a bug: the library casts on
# purpose. Rank promotion (broadcasting (3,) against (2, 3) silently) is also an error in the tests.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


# ----------------------------------------------------------------------------- CI: no silent skips
# Under CI (CI=true) every requirement is installed, so a skipped test means a broken set-up: fail the run.
_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") and _skipped and exitstatus == 0:
        print(f"\nCI: {len(_skipped)} test(s) skipped, which CI does not allow:\n  " + "\n  ".join(_skipped))
        session.exitstatus = 1


# Scripts that other tests run in fresh processes: importing the checkpoint workers needs orbax, and the
# sharding workers set XLA_FLAGS (8 simulated devices) for their own process only.
collect_ignore = ["checkpoint_worker.py", "resharding_worker.py", "sharding_worker.py", "zero_worker.py"]
