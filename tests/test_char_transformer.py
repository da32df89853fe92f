"""examples/char_transformer.py: a short run of the example itself (float32 and 8-bit stochastic Adam state,
seed 0, 40 steps, through its ``main``), checked by value: the losses, the bytes of state per parameter against
a count made here from the parameter shapes, the JSON and the PNG it writes. Plus the corpus, the batches,
the table's arithmetic, and bad arguments refused before JAX is imported. The run takes about 25 s on 2 CPU
cores: the tests that read it are marked exhaustive.
"""

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.helpers import module_from_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "char_transformer.py"
STEPS = 40
FORMATS = ("float32", "8bit-stochastic")


@pytest.fixture(scope="module")
def example():
    """examples/char_transformer.py as a module (its ``__main__`` block does not run)."""
    return module_from_file(EXAMPLE, "char_transformer")


@pytest.fixture(scope="module")
def corpus(example):
    return example.load_corpus()


@pytest.fixture(scope="module")
def output(example, tmp_path_factory):
    """``main``'s runs by format, what it printed, and the folder it wrote runs.json and curves.png to."""
    folder = tmp_path_factory.mktemp("char_transformer")
    args = example.parse_args(
        ["--steps", str(STEPS), "--formats", ",".join(FORMATS), "--seeds", "0"]
        + ["--json", str(folder / "runs.json"), "--plot", str(folder / "curves.png")]
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runs = example.main(args)
    return {r.state_format: r for r in runs}, printed.getvalue(), folder


# ----------------------------------------------------------------------------- the corpus and the batches


def test_the_corpus_is_deterministic_and_large(example, corpus):
    again = example.load_corpus()
    assert np.array_equal(again.train, corpus.train) and np.array_equal(again.validation, corpus.validation)
    total = len(corpus.train) + len(corpus.validation)
    assert 300_000 <= total <= 1_000_000, total  # 381,228 characters on Python 3.11.
    assert len(corpus.validation) == pytest.approx(0.1 * total, abs=1)
    ids = np.concatenate([corpus.train, corpus.validation])
    counts = np.bincount(ids, minlength=example.VOCAB_SIZE)
    assert len(counts) == example.VOCAB_SIZE == 97
    assert counts[example.UNKNOWN] < 0.001 * total  # Docstrings are almost all ASCII.
    assert example.decode([int(np.argmax(counts))]) == " "  # English prose: space is the commonest character.
    assert (counts[1:] > 0).sum() >= 90  # Nearly every printable character occurs.


def test_characters_outside_printable_ascii_and_newline_share_the_unknown_id(example):
    ids = example.encode("a~ \n\té\x7f")
    # Printable ASCII from space (id 2) to tilde (id 96), newline 1; tab, é and DEL all 0.
    assert ids == [ord("a") - 32 + 2, 96, 2, 1, 0, 0, 0]
    assert example.decode(ids) == "a~ \n\ufffd\ufffd\ufffd"


def test_the_batches_are_a_function_of_the_seed_only(example, corpus):
    first = example.batches(corpus.train, seed=0, steps=5, context=64)
    assert first.shape == (5, 32, 65)
    assert np.array_equal(first, example.batches(corpus.train, seed=0, steps=5, context=64))
    assert not np.array_equal(first, example.batches(corpus.train, seed=1, steps=5, context=64))
    # Each window is 65 consecutive characters of the training text.
    windows = np.lib.stride_tricks.sliding_window_view(corpus.train, 65)
    assert (windows == first[3, 7]).all(axis=1).any()


# ----------------------------------------------------------------------------- a short run of main


@pytest.mark.exhaustive  # Trains the model (about 25 s, once for these tests).
def test_the_first_loss_is_a_uniform_predictors(output):
    runs, _, _ = output
    for run in runs.values():
        # Small initial weights (normal, std 0.02): logits near 0, so about ln(97) = 4.575; measured 4.650.
        assert abs(run.train_loss[0] - math.log(97)) < 0.15, run.train_loss[0]
        assert abs(run.validation_loss[0] - math.log(97)) < 0.15, run.validation_loss[0]


@pytest.mark.exhaustive  # Trains the model (about 25 s, once for these tests).
def test_training_lowers_the_loss_well_below_uniform(output):
    runs, _, _ = output
    for run in runs.values():
        assert run.steps == [0, 20, 40]
        # Measured after 40 steps: 2.77 (train) and 2.79 (validation), against 4.65 at step 0.
        assert run.train_loss[-1] < math.log(97) - 1.2, run.train_loss
        assert run.validation_loss[-1] < math.log(97) - 1.2, run.validation_loss
        assert run.train_loss[0] > run.train_loss[1] > run.train_loss[2]
        assert len(run.batch_loss) == STEPS
        assert np.mean(run.batch_loss[-10:]) < np.mean(run.batch_loss[:10]) - 0.5
        assert 0 < run.seconds_per_step < 5


@pytest.mark.exhaustive  # Trains the model (about 25 s, once for these tests).
def test_8bit_state_starts_where_float32_does_and_ends_close_to_it(output):
    runs, _, _ = output
    full, q8 = runs["float32"], runs["8bit-stochastic"]
    # The same seed: the same initial weights and evaluation windows, so bit for bit the same first losses.
    assert q8.train_loss[0] == full.train_loss[0] and q8.validation_loss[0] == full.validation_loss[0]
    assert q8.train_loss[-1] != full.train_loss[-1]  # The state did change the steps.
    # Measured after 40 steps, seeds 0-3: |relative difference| 0.04%, 0.52%, 0.10% and 0.08%; 3% is 6x that.
    assert abs(q8.train_loss[-1] / full.train_loss[-1] - 1) < 0.03
    assert abs(q8.validation_loss[-1] / full.validation_loss[-1] - 1) < 0.03


def _state_bytes(shapes, quantized):
    """Adam's mu and nu for params of ``shapes``: 4 bytes an element in float32; in 8 bits (leaves of at least
    4096 elements), 1 byte an element and a float32 scale per 256 elements of each row of the last axis."""
    total = 0
    for shape in shapes:
        n = math.prod(shape)
        if quantized and n >= 4096:
            total += n + 4 * math.prod(shape[:-1]) * math.ceil(shape[-1] / 256)
        else:
            total += 4 * n
    return 2 * total  # mu and nu


@pytest.mark.exhaustive  # Trains the model (about 25 s, once for these tests).
def test_8bit_state_takes_about_a_quarter_of_the_bytes(example, output):
    runs, _, _ = output
    _, params = example.init(example.Config(), seed=0)
    shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(params)]
    n = sum(math.prod(s) for s in shapes)
    assert n == runs["float32"].parameters == 429_921
    count, key = 4, 8  # Adam's int32 step count; stochastic rounding's PRNG key (two uint32).
    assert runs["float32"].bytes_per_parameter == (_state_bytes(shapes, False) + count) / n
    assert runs["8bit-stochastic"].bytes_per_parameter == (_state_bytes(shapes, True) + count + key) / n
    # Every weight matrix and both embeddings are quantized; the biases and LayerNorm parameters are not.
    small = sum(math.prod(s) for s in shapes if math.prod(s) < 4096)
    assert small < 0.02 * n
    assert runs["8bit-stochastic"].bytes_per_parameter < 2.15 < 0.27 * runs["float32"].bytes_per_parameter


@pytest.mark.parametrize("optimizer", ["rmsprop", "adagrad"])
def test_the_other_optimizers_keep_one_moment_each(example, optimizer):
    _, params = example.init(example.Config(), seed=0)
    shapes = [tuple(leaf.shape) for leaf in jax.tree.leaves(params)]
    n = sum(math.prod(s) for s in shapes)
    tx = example.make_optimizer("8bit-stochastic", 1e-3, optimizer=optimizer)
    # One accumulator (half of Adam's two moments), the PRNG key, and no step count.
    assert example.state_bytes_per_parameter(tx, params) == (_state_bytes(shapes, True) / 2 + 8) / n
    args = example.parse_args(["--optimizer", optimizer])
    assert args.lr == example.LEARNING_RATES[optimizer] and example.parse_args(["--lr", "0.5"]).lr == 0.5


@pytest.mark.exhaustive  # Trains the model (about 25 s, once for these tests).
def test_main_prints_the_table_and_writes_what_it_ran(output):
    runs, printed, folder = output
    rows = {line.split(" | ")[0].strip("| "): line for line in printed.splitlines() if line.startswith("| ")}
    assert rows["float32"].startswith(f"| float32 | 8.00 | {runs['float32'].train_loss[-1]:.4f} | +0.00% | +0.00% |")
    q8 = runs["8bit-stochastic"]
    relative = q8.train_loss[-1] / runs["float32"].train_loss[-1] - 1
    assert rows["8bit-stochastic"].startswith(
        f"| 8bit-stochastic | 2.10 | {q8.train_loss[-1]:.4f} | {relative:+.2%} | {relative:+.2%} | "
        f"{q8.validation_loss[-1]:.4f} |"
    )
    written = json.loads((folder / "runs.json").read_text())
    assert written["steps"] == STEPS
    assert [r["state_format"] for r in written["runs"]] == list(FORMATS)
    for record in written["runs"]:
        assert record == runs[record["state_format"]]._asdict()  # Every number, the curves included.
    png = (folder / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


# ----------------------------------------------------------------------------- the table's arithmetic


def test_the_table_compares_each_seed_with_float32s(example):
    def run(state_format, seed, final):
        return example.Run(state_format, seed, [0, 10], [4.6, final], [4.6, final + 0.1], [], 1.0, 0.01, 100)

    runs = [run("float32", 0, 2.0), run("float32", 1, 4.0), run("8bit-nearest", 0, 2.2), run("8bit-nearest", 1, 3.0)]
    relative = example.relative_to_float32(runs)
    np.testing.assert_allclose(relative["8bit-nearest"], [0.1, -0.25])
    row = example.table(runs).splitlines()[-1]
    # Mean -7.50%; the worst seed is the one farthest from 0, with its sign.
    assert row == "| 8bit-nearest | 1.00 | 2.6000 | -7.50% | -25.00% | 2.7000 | 0.010 |"
    # Without float32 runs there is nothing to compare with.
    assert " n/a | n/a " in example.table(runs[2:])


# ----------------------------------------------------------------------------- arguments


def test_the_defaults_run_every_format_on_three_seeds(example):
    args = example.parse_args([])
    assert args.formats == ["float32", "bfloat16-stochastic", "8bit-stochastic", "8bit-nearest"]
    assert (args.seeds, args.steps, args.json, args.plot) == ([0, 1, 2], 240, None, None)
    assert example.parse_args(["--formats", "8bit-nearest,float32,8bit-nearest"]).formats == ["8bit-nearest", "float32"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--formats", "float32,int8"],
            "argument --formats: unknown format 'int8'; choose from float32, bfloat16-stochastic, 8bit-stochastic, "
            "8bit-nearest",
        ),
        (["--seeds", "0,x"], "argument --seeds: expected comma-separated integers, got '0,x'"),
        (["--steps", "0"], "argument --steps: expected an integer >= 1, got '0'"),
        (["--lr", "-1"], "argument --lr: expected a positive learning rate, got -1.0"),
        (["--plot", "curves.jpg"], "argument --plot: expected a name ending in .png, got 'curves.jpg'"),
        (["--json", "missing/runs.json"], "argument --json: directory 'missing' does not exist"),
    ],
)
def test_a_bad_argument_exits_2_before_jax_is_imported(args, message, tmp_path):
    result = _run_without_jax(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"char_transformer.py: error: {message}"


def test_good_arguments_get_as_far_as_importing_jax(tmp_path):
    # Control for the test above: the same set-up with good arguments fails only at the import.
    result = _run_without_jax(["--steps", "1", "--formats", "float32", "--plot", "curves.png"], tmp_path)
    assert result.returncode == 1 and "ImportError: the example imported jax" in result.stderr


def _run_without_jax(args, tmp_path):
    """The script run with a jax that cannot be imported first on the path."""
    (tmp_path / "nojax" / "jax").mkdir(parents=True)
    (tmp_path / "nojax" / "jax" / "__init__.py").write_text('raise ImportError("the example imported jax")\n')
    env = {"PYTHONPATH": str(tmp_path / "nojax"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, str(EXAMPLE), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
