"""Work that runs in fresh processes, started when the session starts and run on a background thread.

The multi-device, multi-process and checkpoint workers (tests/*_worker.py, examples/data_parallel.py), the
notebooks and the benchmark suite each run in their own process, for up to a few minutes of CPU, while the
in-process tests keep one core busy. So each such piece of work is a ``Job``: tests/conftest.py starts every
job the selected tests need as soon as collection ends, the longest first, two at a time on background
threads, and moves the tests that read the jobs' results to the end of the session. The jobs then run
beside the in-process tests, keeping a 2-core machine's cores busy, and a test waiting for its job rarely
waits.

A test module lists its jobs in a module-level ``JOBS``; its fixture returns ``job.result()``, which waits
for the job (starting it, if nothing did) and re-raises its error, with the worker's output, if it failed.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Two at a time: beside the in-process tests, the longest job and the others, one after another.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="background-job")
_BASE = Path(tempfile.mkdtemp(prefix="adaptive_tx-jobs-"))
STARTED: list[Job] = []  # In the order they were started.
atexit.register(shutil.rmtree, _BASE, ignore_errors=True)


class Job:
    """``work(directory)`` run once per session on a background thread, in a fresh directory of its own;
    ``seconds``: about how long it takes on 2 cores, so that the longest starts first."""

    def __init__(self, name: str, work: Callable[[Path], Any], seconds: float):
        self.name = name
        self.work = work
        self.seconds = seconds
        self.took: float | None = None  # Seconds, once it has run.
        self._future: concurrent.futures.Future | None = None

    def start(self) -> Job:
        if self._future is None:
            directory = Path(tempfile.mkdtemp(prefix=re.sub(r"\W+", "-", self.name) + "-", dir=_BASE))
            self._future = _POOL.submit(self._timed, directory)
            STARTED.append(self)
        return self

    def _timed(self, directory: Path) -> Any:
        start = time.monotonic()
        try:
            return self.work(directory)
        finally:
            self.took = time.monotonic() - start

    def result(self) -> Any:
        return self.start()._future.result()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"Job({self.name!r})"


_RUNNING: set[subprocess.Popen] = set()
# The jobs yield the CPU to the in-process tests, the session's longest stream: at equal priority those ended
# last in CI (553 s; the jobs' two threads about 400 s each); with the jobs at nice 10, all three streams
# ended together, at 497 s.
_NICE = ["nice", "-n", "10"] if shutil.which("nice") else []


def popen(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT, **kwargs: Any) -> subprocess.Popen:
    """``python ARGS`` started in a fresh process: this interpreter, this checkout first on the path, ``env``
    added to the environment. ``stop`` kills it if the session ends first."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [*_NICE, sys.executable, *args], cwd=cwd, env={**os.environ, "PYTHONPATH": path, **(env or {})}, **kwargs
    )
    _RUNNING.add(process)
    return process


def python(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT, timeout: float = 900) -> str:
    """``python ARGS`` run to the end (see ``popen``); returns its stdout. The output is captured (a job must
    not write into pytest's report); a failure raises with the command, its exit status and its output's tail."""
    process = popen(args, env, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
        _RUNNING.discard(process)
    if process.returncode:
        raise RuntimeError(
            f"python {' '.join(args)} exited with {process.returncode}:\n{stdout[-3000:]}\n{stderr[-6000:]}"
        )
    return stdout


REPORT = "{report}"  # In ``report``'s arguments: the path where the worker writes its JSON report.


def report(args: Sequence[str], directory: Path, env: dict[str, str] | None = None, timeout: float = 900) -> Any:
    """``python ARGS`` run to the end (see ``python``), with ``REPORT`` in ARGS naming ``DIRECTORY/report.json``;
    the JSON the worker wrote there."""
    path = directory / "report.json"
    python([str(path) if arg == REPORT else arg for arg in args], env, timeout=timeout)
    return json.loads(path.read_text())


def stop() -> None:
    """At the end of the session: drop the jobs not started, kill the processes still running."""
    _POOL.shutdown(wait=False, cancel_futures=True)
    for process in _RUNNING:
        if process.poll() is None:
            process.kill()
