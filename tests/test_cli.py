"""The `adaptive-tx` command: the race on every problem, its table, its PNG, its animation and its errors."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from adaptive_tx import cli
from adaptive_tx.palette import COLORS
from adaptive_tx.problems import PROBLEMS
from tests.helpers import run_steps
from tests.test_palette import rgb

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_race_prints_table_and_writes_png(problem, tmp_path, capsys):
    out = tmp_path / f"{problem}.png"
    assert cli.main(["race", "--problem", problem, "--steps", "300", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    assert "final loss" in lines[header] and "distance to min" in lines[header] and "steps to" in lines[header]
    rows = lines[header + 2 : header + 7]
    assert [r.split()[0] for r in rows] == list(cli.OPTIMIZERS)
    for row in rows:
        final_loss, steps = row.split()[2], row.split()[-1]
        float(final_loss)
        assert steps == "never" or 0 <= int(steps) <= 300
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000  # Contours and five paths, not an empty canvas.
    assert f"wrote {out}" in text
    assert "note:" not in text  # The default learning rates do not diverge.


def test_race_agrees_with_an_independent_loop():
    # The race's scan against a Python loop of jitted steps; steps-to-target recomputed from that loop.
    problem = PROBLEMS["beale"]
    (lap,) = cli.race(problem, 400, {"adam": 0.1})
    grad = jax.grad(problem.fn)
    trajectory, _ = run_steps(cli.OPTIMIZERS["adam"](0.1), jax.numpy.asarray(problem.start), lambda w, t: grad(w), 400)
    path = np.asarray([problem.start, *map(np.asarray, trajectory)])
    # Scan and loop order float32 operations differently; 1e-4 absolute on O(1) coordinates.
    np.testing.assert_allclose(lap.path, path, atol=1e-4)
    losses = np.asarray([problem.fn(w) for w in path])
    assert lap.steps_to_target == int(np.flatnonzero(losses <= problem.target)[0])
    assert lap.distance == pytest.approx(np.linalg.norm(path[-1] - np.array([3.0, 0.5])), abs=1e-4)


def test_lr_override_and_optimizer_subset(tmp_path, capsys):
    out = tmp_path / "race.png"
    cli.main(["race", "--steps", "50", "--lr", "adam=0.003", "--optimizers", "adam,momentum", "--out", str(out)])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    table = {r[0]: r for r in rows if r and r[0] in cli.OPTIMIZERS}
    assert set(table) == {"adam", "momentum"}
    assert table["adam"][1] == "0.003"
    assert table["momentum"][1] == f"{PROBLEMS['rosenbrock'].learning_rates['momentum']:g}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["race", "--problem", "ackley"], "invalid choice: 'ackley'"),
        (["race", "--lr", "sgd=0.1"], "unknown optimizer 'sgd'"),
        (["race", "--lr", "adam"], "expected NAME=VALUE"),
        (["race", "--lr", "adam=fast"], "must be a number"),
        (["race", "--lr", "adam=-1"], "must be finite and >= 0"),
        (["race", "--optimizers", "adam,lion"], "unknown optimizer 'lion'"),
        (["race", "--steps", "0"], "expected a positive integer"),
        (["sprint"], "invalid choice: 'sprint'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_installed_command_help_explains_everything():
    command = Path(sys.executable).parent / "adaptive-tx"
    result = subprocess.run([command, "--help"], capture_output=True, text=True, check=True)
    for word in ["race", "AdaGrad", "Adam", *PROBLEMS]:
        assert word in result.stdout
    result = subprocess.run([command, "race", "--help"], capture_output=True, text=True, check=True)
    for flag in ["--problem", "--steps", "--lr", "--out", "--optimizers", "--target", *PROBLEMS]:
        assert flag in result.stdout


@pytest.fixture
def no_race(monkeypatch, tmp_path):
    """Fail if the race starts; run from an empty folder so that nothing lands in the repository."""

    def race(*args, **kwargs):
        raise AssertionError("the race ran before the arguments were checked")

    monkeypatch.setattr(cli, "race", race)
    monkeypatch.chdir(tmp_path)


def test_out_without_suffix_writes_and_names_the_png(tmp_path, capsys):
    out = tmp_path / "noext"
    assert cli.main(["race", "--steps", "20", "--optimizers", "adam", "--out", str(out)]) == 0
    written = tmp_path / "noext.png"
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {written}"
    assert written.read_bytes()[:8] == PNG_MAGIC
    assert sorted(p.name for p in tmp_path.iterdir()) == ["noext.png"]
    # Control: a name that already ends in .png, in any case, is written as given.
    out = tmp_path / "Race.PNG"
    assert cli.main(["race", "--steps", "5", "--optimizers", "adam", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}"
    assert out.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("missing/dir/x.png", "argument --out: directory 'missing/dir' does not exist"),
        ("race.jpg", "argument --out: the race writes a PNG: expected a name ending in .png, got 'race.jpg'"),
        ("race.pdf", "argument --out: the race writes a PNG: expected a name ending in .png, got 'race.pdf'"),
        ("plots/", "argument --out: 'plots/' is a directory; name a file in it, e.g. 'plots/race.png'"),
        ("existing", "argument --out: 'existing' is a directory; name a file in it, e.g. 'existing/race.png'"),
        ("afile/x.png", "argument --out: 'afile' is not a directory"),
    ],
)
def test_bad_out_exits_2_before_the_race(out, message, no_race, tmp_path, capsys):
    (tmp_path / "existing").mkdir()
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", "--out", out])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == f"adaptive-tx race: error: {message}"
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "existing"]


def test_unwritable_out_directory_exits_2_before_the_race(no_race, tmp_path, monkeypatch, capsys):
    # Root may write anywhere, so the permission check is simulated: os.access says "no" for this folder.
    locked = tmp_path / "locked"
    locked.mkdir()
    access = cli.os.access
    monkeypatch.setattr(cli.os, "access", lambda path, mode: Path(path) != Path("locked") and access(path, mode))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", "--out", "locked/x.png"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "adaptive-tx race: error: argument --out: directory 'locked' is not writable"
    )


@pytest.mark.parametrize("target", ["nan", "inf", "-inf", "NaN", "-Infinity"])
def test_non_finite_target_exits_2_before_the_race(target, no_race, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", f"--target={target}"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"adaptive-tx race: error: argument --target: expected a finite number, got {target!r}"
    )
    # Control: finite targets, negative ones included, still parse.
    parser = cli.build_parser()
    assert parser.parse_args(["race", "--target", "1e3"]).target == 1000.0
    assert parser.parse_args(["race", "--target=-1"]).target == -1.0


def _race_losses(name, lr, steps):
    """The CLI's losses for one run on Rosenbrock, checked against an independent Python loop of jitted steps."""
    problem = PROBLEMS["rosenbrock"]
    (lap,) = cli.race(problem, steps, {name: lr})
    grad = jax.grad(problem.fn)
    trajectory, _ = run_steps(cli.OPTIMIZERS[name](lr), jax.numpy.asarray(problem.start), lambda w, t: grad(w), steps)
    loop = np.asarray([problem.fn(jax.numpy.asarray(w)) for w in [problem.start, *trajectory]])
    np.testing.assert_array_equal(np.isfinite(lap.losses), np.isfinite(loop))
    finite = np.isfinite(loop)
    np.testing.assert_allclose(lap.losses[finite], loop[finite], rtol=1e-3)
    return lap.losses


def test_non_finite_loss_gets_a_note_under_the_table(tmp_path, capsys):
    # Momentum at 10 on Rosenbrock overflows within a few steps; Adam at its default descends and gets no note.
    out = tmp_path / "race.png"
    args = ["race", "--steps", "200", "--optimizers", "momentum,adam", "--lr", "momentum=10", "--out", str(out)]
    assert cli.main(args) == 0
    losses = _race_losses("momentum", 10.0, 200)
    step = int(np.flatnonzero(~np.isfinite(losses))[0])
    assert 0 < step < 10
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in cli.OPTIMIZERS}
    assert table["momentum"][2] == "nan"  # The row stays.
    assert float(table["adam"][2]) < 1.0
    assert [line for line in lines if line.startswith("note:")] == lines[-2:-1]  # None for Adam.
    assert lines[-2:] == [
        f"note: momentum's loss became {losses[step]} at step {step}; try a smaller learning rate, "
        "e.g. --lr momentum=0.02",
        f"wrote {out}",
    ]
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_finite_but_growing_loss_gets_a_note_under_the_table(tmp_path, capsys):
    # Adam at 1e6 on Rosenbrock stays finite but ends far above where it started.
    out = tmp_path / "race.png"
    assert cli.main(["race", "--steps", "50", "--optimizers", "adam", "--lr", "adam=1e6", "--out", str(out)]) == 0
    losses = _race_losses("adam", 1e6, 50)
    assert np.isfinite(losses).all() and losses[-1] > 1e6 * losses[0]
    step = int(np.flatnonzero(losses <= losses[0])[-1]) + 1  # From here on the loss stays above its start.
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        f"note: adam's loss rose above its start ({losses[0]:.3e}) at step {step} and ended at {losses[-1]:.3e}; "
        "try a smaller learning rate, e.g. --lr adam=0.1",
        f"wrote {out}",
    ]


def test_without_matplotlib_the_table_prints_and_the_png_is_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError.
    out = tmp_path / "race.png"
    assert cli.main(["race", "--steps", "20", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    assert [r.split()[0] for r in lines[header + 2 : header + 7]] == list(cli.OPTIMIZERS)
    assert lines[-1] == f'skipped {out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"'
    assert not any(line.startswith("wrote") for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_race_help_documents_out_animate_and_target(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ".png is appended to a name without a suffix, any other suffix is an error" in text
    assert 'Without matplotlib (pip install "adaptive_tx[plot]") the table still prints and the PNG is skipped' in text
    assert "a finite number" in text
    assert "[--animate FILE]" in text
    assert "--animate FILE also write an animation of the race" in text
    assert "a .gif, or an .mp4 if ffmpeg is installed (default: none)" in text
    assert f"At most {cli.MAX_FRAMES} frames" in text
    assert "Independent of --out, which is still written; skipped without matplotlib" in text


# The race's five colours (adaptive_tx.palette), as 8-bit RGB.
RACE_RGB = {name: rgb(COLORS[name]) for name in cli.OPTIMIZERS}


@pytest.mark.exhaustive  # 2000 steps drawn into frames.
def test_animate_writes_a_gif_of_the_race_under_5_mb(tmp_path, capsys):
    from PIL import Image

    out, gif = tmp_path / "race.png", tmp_path / "race.gif"
    args = ["race", "--problem", "quadratic", "--steps", "2000", "--out", str(out), "--animate", str(gif)]
    assert cli.main(args) == 0
    frames = len(cli.frame_steps(2000))
    assert capsys.readouterr().out.splitlines()[-2:] == [f"wrote {out}", f"wrote {gif} ({frames} frames)"]
    assert out.read_bytes()[:8] == PNG_MAGIC  # --out is still written.
    assert 0 < gif.stat().st_size < 5_000_000
    with Image.open(gif) as movie:
        assert movie.format == "GIF"
        # The step counter changes on every frame, so none merges into the one before it.
        assert 100 <= movie.n_frames == frames <= cli.MAX_FRAMES
        first = np.asarray(movie.convert("RGB"))
        movie.seek(movie.n_frames - 1)
        last = np.asarray(movie.convert("RGB"))
        assert movie.info["duration"] >= 1000  # The end is held before the GIF loops.
    assert first.shape == last.shape == (468, 675, 3)
    assert (first != last).any(axis=-1).sum() > 1000  # Markers and trails moved, the counter changed.
    for name, color in RACE_RGB.items():  # Each optimizer's colour survives the GIF's 256-colour palette exactly.
        assert (last == color).all(axis=-1).sum() > 50, (name, color)


def test_one_palette_keeps_each_line_colour_exactly():
    from PIL import Image

    # Greys, a block of each optimizer's colour, and beside it a larger block of a near colour, which median cut
    # keeps: Pillow's cached palette lookup sent the exact colours to such neighbours (Adam's blue (0, 114, 178)
    # to (0, 111, 174) in the quadratic's race).
    frame = np.repeat(np.linspace(60, 250, 120).astype(np.uint8)[None, :, None], 90, axis=0).repeat(3, axis=2)
    exact = list(dict.fromkeys(RACE_RGB.values()))
    for k, color in enumerate(exact):
        frame[10 * k : 10 * k + 10, :20] = color
        frame[10 * k : 10 * k + 10, 20:60] = np.clip(np.array(color) + [0, -3, -4], 0, 255)
    first, last = cli._one_palette([Image.fromarray(frame[::-1]), Image.fromarray(frame)], exact)
    assert first.mode == last.mode == "P" and first.getpalette() == last.getpalette()  # One palette.
    out = np.asarray(last.convert("RGB"))
    for k, color in enumerate(exact):
        assert (out[10 * k : 10 * k + 10, :20] == color).all(), color
        assert (out[10 * k : 10 * k + 10, 20:60] != color).any(axis=-1).all(), color  # The near colour stays apart.


def test_race_scene_draws_each_optimizer_at_its_step():
    import matplotlib.pyplot as plt

    problem = PROBLEMS["quadratic"]
    laps = cli.race(problem, 2000, {"adam": 0.1, "momentum": 0.1})
    fig, draw = cli._race_scene(problem, laps)
    try:
        (ax,) = fig.axes
        draw(840)
        assert ax.get_title() == "quadratic: step 840 / 2000"
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert labels == ["minimum", "adam (lr 0.1)", "momentum (lr 0.1)", "start"]
        lines = {line.get_label(): line for line in ax.get_lines()}
        for lap in laps:
            marker = lines[f"{lap.name} (lr {lap.learning_rate:g})"]
            np.testing.assert_array_equal(np.column_stack(marker.get_data()), lap.path[840:841])
            trails = [line for line in ax.get_lines() if line.get_color() == marker.get_color() and line is not marker]
            (trail,) = trails
            np.testing.assert_array_equal(np.column_stack(trail.get_data()), lap.path[:841])
        draw(0)
        assert ax.get_title() == "quadratic: step 0 / 2000"
        for lap in laps:
            marker = lines[f"{lap.name} (lr {lap.learning_rate:g})"]
            np.testing.assert_array_equal(np.column_stack(marker.get_data()), [problem.start])
    finally:
        plt.close(fig)


@pytest.mark.parametrize("steps", [1, 5, 119, 120, 121, 500, 2000, 10**6])
def test_frame_steps_include_both_ends_are_increasing_and_capped(steps):
    frames = cli.frame_steps(steps)
    assert frames[0] == 0 and frames[-1] == steps
    assert (np.diff(frames) > 0).all()
    assert len(frames) == min(steps + 1, cli.MAX_FRAMES)
    np.testing.assert_array_equal(frames[:10], np.arange(min(steps + 1, 10)))  # Every one of the first steps.
    if steps >= 500:  # Then ever wider gaps.
        gaps = np.diff(frames)
        assert gaps[-1] > gaps[len(gaps) // 2] > gaps[10] >= 1
    # Control: a smaller cap is honoured too.
    small = cli.frame_steps(steps, max_frames=30)
    assert small[0] == 0 and small[-1] == steps and (np.diff(small) > 0).all() and len(small) == min(steps + 1, 30)


@pytest.mark.parametrize(
    ("animate", "message"),
    [
        (
            "race.png",
            "argument --animate: the animation is a GIF or an MP4: expected a name ending in .gif or .mp4, "
            "got 'race.png'",
        ),
        (
            "race.mp4",
            "argument --animate: writing an MP4 needs ffmpeg, which is not on the PATH; install ffmpeg or write a "
            "GIF, e.g. 'race.gif'",
        ),
        ("plots/", "argument --animate: 'plots/' is a directory; name a file in it, e.g. 'plots/race.gif'"),
        ("existing", "argument --animate: 'existing' is a directory; name a file in it, e.g. 'existing/race.gif'"),
        ("missing/dir/x.gif", "argument --animate: directory 'missing/dir' does not exist"),
        ("afile/x.gif", "argument --animate: 'afile' is not a directory"),
    ],
)
def test_bad_animate_exits_2_before_the_race(animate, message, no_race, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)  # No ffmpeg, wherever the tests run.
    (tmp_path / "existing").mkdir()
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["race", "--animate", animate])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines()[-1] == f"adaptive-tx race: error: {message}"
    assert captured.out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "existing"]


def test_animate_accepts_gif_any_case_no_suffix_and_mp4_with_ffmpeg(no_race, monkeypatch):
    parser = cli.build_parser()
    assert parser.parse_args(["race"]).animate is None  # Off by default.
    assert parser.parse_args(["race", "--animate", "race"]).animate == "race.gif"
    assert parser.parse_args(["race", "--animate", "Race.GIF"]).animate == "Race.GIF"
    monkeypatch.setattr(cli.shutil, "which", lambda name: "/usr/bin/ffmpeg" if name == "ffmpeg" else None)
    assert parser.parse_args(["race", "--animate", "race.mp4"]).animate == "race.mp4"


def test_without_matplotlib_the_animation_is_skipped_too(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError.
    out, gif = tmp_path / "race.png", tmp_path / "race.gif"
    assert cli.main(["race", "--steps", "20", "--out", str(out), "--animate", str(gif)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("optimizer") for line in lines)  # The table still prints.
    assert lines[-2:] == [
        f'skipped {out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"',
        f'skipped {gif}: drawing the animation needs matplotlib: pip install "adaptive_tx[plot]"',
    ]
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- adaptive-tx train


def _train_table(text):
    """The rows of the train table, by optimizer name."""
    return {r.split()[0]: r.split() for r in text.splitlines() if r.split() and r.split()[0] in cli.TRAIN_OPTIMIZERS}


def test_train_prints_table_and_writes_png(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from adaptive_tx import digits

    out = tmp_path / "tmp.png"
    args = ["train", "--epochs", "2", "--optimizers", "adam,sgd", "--lr", "sgd=0.3", "--out", str(out)]
    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("digits: MLP 64-500-300-10, 1437 training / 360 test images, batch 100; 2 epochs, seed 0")
    assert lines[1].split("  ")[:1] == ["optimizer"]
    for column in ("learning rate", "train loss", "train accuracy", "test accuracy"):
        assert column in lines[1]
    table = _train_table("\n".join(lines))
    assert [line.split()[0] for line in lines[3:5]] == ["adam", "sgd"]  # In the order asked for.
    assert table["adam"][1] == "0.001" and table["sgd"][1] == "0.3"  # A default, and an override.
    # The row is digits.train's result with the same arguments (one compile more, for Adam only).
    history = digits.train(cli.TRAIN_OPTIMIZERS["adam"][0](1e-3), digits.load(0), epochs=2, seed=0)
    assert table["adam"][2:] == [
        f"{history.train_loss[-1]:.3e}",
        f"{history.train_accuracy[-1]:.4f}",
        f"{history.test_accuracy[-1]:.4f}",
    ]
    assert float(table["adam"][4]) > 0.9  # Measured 0.942 after two epochs.
    assert 0.5 < float(table["sgd"][4]) <= 1.0
    assert lines[-1] == f"wrote {out}"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000  # Two panels of curves, not an empty canvas.


def test_train_defaults_cover_sgd_and_the_five():
    args = cli.build_parser().parse_args(["train"])
    assert (args.epochs, args.seed, args.out, args.lr) == (20, 0, "train.png", [])
    assert args.optimizers == ["sgd", *cli.OPTIMIZERS]
    assert {n: lr for n, (_, lr) in cli.TRAIN_OPTIMIZERS.items()} == {
        "sgd": 0.1,
        "adagrad": 0.01,
        "rmsprop": 1e-3,
        "adadelta": 1.0,
        "momentum": 1.0,
        "adam": 1e-3,
    }
    # Adadelta with the paper's rho and eps, not the library's default rho = 0.9.
    make, lr = cli.TRAIN_OPTIMIZERS["adadelta"]
    g = jax.numpy.ones(3)
    updates, _ = make(lr).update(g, make(lr).init(g))
    # The first step on a unit gradient: sqrt(eps) / sqrt((1 - rho) + eps) (rho = 0.9 would give 3.2e-3), to
    # float32 rounding.
    np.testing.assert_allclose(-updates, np.sqrt(1e-6 / (1 - 0.95 + 1e-6)), rtol=1e-6)


@pytest.fixture
def no_training(monkeypatch, tmp_path):
    """Fail if training starts; run from an empty folder so that nothing lands in the repository."""

    def train_all(*args, **kwargs):
        raise AssertionError("training started before the arguments were checked")

    monkeypatch.setattr(cli, "train_all", train_all)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optimizers", "adam,lion"], "argument --optimizers: unknown optimizer 'lion'; choose from sgd, adagrad"),
        (["--optimizers", ","], "argument --optimizers: unknown optimizer (none given)"),
        (["--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
        (["--epochs", "two"], "argument --epochs: expected a positive integer, got 'two'"),
        (["--seed", "-1"], "argument --seed: expected an integer from 0 to 2**32 - 1, got '-1'"),
        (["--seed", str(2**32)], f"argument --seed: expected an integer from 0 to 2**32 - 1, got '{2**32}'"),
        (["--lr", "sgd"], "argument --lr: expected NAME=VALUE, got 'sgd'"),
        (["--lr", "lion=1"], "argument --lr: unknown optimizer 'lion'; choose from sgd, adagrad"),
        (["--lr", "sgd=fast"], "argument --lr: learning rate for sgd must be a number, got 'fast'"),
        (["--lr", "sgd=nan"], "argument --lr: learning rate for sgd must be finite and >= 0, got 'nan'"),
        (
            ["--out", "curves.jpg"],
            "argument --out: train writes a PNG: expected a name ending in .png, got 'curves.jpg'",
        ),
        (["--out", "plots/"], "argument --out: 'plots/' is a directory; name a file in it, e.g. 'plots/train.png'"),
        (["--out", "missing/x.png"], "argument --out: directory 'missing' does not exist"),
        (["--problem", "rosenbrock"], "unrecognized arguments: --problem rosenbrock"),
    ],
)
def test_train_bad_arguments_exit_2_before_training(args, message, no_training, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err.splitlines()[-1]
    assert captured.err.splitlines()[-1].startswith("adaptive-tx")
    assert captured.out == ""


def test_train_without_sklearn_exits_with_the_extra_to_install(no_training, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now raises ImportError.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--epochs", "1"])
    assert exit_info.value.code == (
        'adaptive-tx train: the digits data needs scikit-learn: pip install "adaptive_tx[notebooks]"'
    )
    assert capsys.readouterr().out == ""


def test_train_without_matplotlib_prints_the_table_and_skips_the_png(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "train.png"
    assert cli.main(["train", "--epochs", "1", "--optimizers", "sgd", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert list(_train_table("\n".join(lines))) == ["sgd"]
    assert lines[-1] == f'skipped {out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"'
    assert list(tmp_path.iterdir()) == []


def test_help_documents_train(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "train" in text and "digits" in text
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--epochs", "--seed", "--optimizers", "--lr", "--out"):
        assert flag in text
    assert "sgd=0.1, adagrad=0.01, rmsprop=0.001, adadelta=1, momentum=1, adam=0.001" in text
    assert "rho=0.95, eps=1e-6" in text


def test_cli_page_documents_train_with_the_default_learning_rates():
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    block = text.split("$ adaptive-tx train\n")[1].split("```")[0]
    rows = _train_table(block)
    assert list(rows) == list(cli.TRAIN_OPTIMIZERS)
    for name, (_, lr) in cli.TRAIN_OPTIMIZERS.items():
        assert rows[name][1] == f"{lr:g}"
        assert 0.9 < float(rows[name][4]) <= 1.0
    for flag in ("--epochs", "--seed", "--optimizers", "--lr", "--out"):
        assert f"`{flag}" in text
