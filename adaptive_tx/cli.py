"""The ``adaptive-tx`` command: race the lecture's five optimizers on a 2-D surface, or train a digits MLP."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import itertools
import math
import os
import shutil
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import jax
import numpy as np
import optax

import adaptive_tx as atx
from adaptive_tx import digits
from adaptive_tx.palette import COLORS
from adaptive_tx.problems import PROBLEMS, Problem, trajectory

if TYPE_CHECKING:
    from matplotlib.animation import AbstractMovieWriter
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from PIL import Image

# The lecture's order: AdaGrad -> RMSprop -> Adadelta, then Momentum, then Adam.
OPTIMIZERS: dict[str, Callable[[float], optax.GradientTransformation]] = {
    "adagrad": atx.adagrad,
    "rmsprop": atx.rmsprop,
    "adadelta": atx.adadelta,
    "momentum": atx.momentum,
    "adam": atx.adam,
}


@dataclasses.dataclass(frozen=True)
class Lap:
    """One optimizer's run in a race."""

    name: str
    learning_rate: float
    path: np.ndarray  # w_0 .. w_T, shape (T + 1, 2).
    losses: np.ndarray  # f(w_0) .. f(w_T), shape (T + 1,).
    distance: float  # from w_T to the nearest minimum; inf when the surface has none.
    steps_to_target: int | None  # first t with f(w_t) <= target; None if never.


def race(problem: Problem, steps: int, learning_rates: dict[str, float], target: float | None = None) -> list[Lap]:
    """Run each optimizer named in ``learning_rates`` for ``steps`` steps on ``problem``."""
    target = problem.target if target is None else target
    loss = jax.jit(jax.vmap(problem.fn))
    laps = []
    for name, lr in learning_rates.items():
        path = trajectory(problem, OPTIMIZERS[name](lr), steps)
        losses = np.asarray(loss(path))
        reached = np.flatnonzero(losses <= target)
        laps.append(
            Lap(
                name=name,
                learning_rate=lr,
                path=np.asarray(path),
                losses=losses,
                distance=problem.distance_to_minimum(path[-1]),
                steps_to_target=int(reached[0]) if reached.size else None,
            )
        )
    return laps


def format_table(problem: Problem, laps: Sequence[Lap], target: float) -> str:
    """The race's result as a fixed-width text table."""
    header = ("optimizer", "learning rate", "final loss", "distance to min", f"steps to f <= {target:g}")
    rows = [
        (
            lap.name,
            f"{lap.learning_rate:g}",
            f"{lap.losses[-1]:.3e}",
            "-" if math.isinf(lap.distance) and not problem.minima else f"{lap.distance:.3e}",
            "never" if lap.steps_to_target is None else str(lap.steps_to_target),
        )
        for lap in laps
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def divergence(lap: Lap) -> tuple[int, str] | None:
    """Where ``lap`` diverged, as ``(step, what happened)``; ``None`` when it did not.

    A run diverged when its loss became non-finite at some step, or when it ended above its starting loss;
    in the second case the step is the first from which the loss stayed above that start.
    """
    bad = np.flatnonzero(~np.isfinite(lap.losses))
    if bad.size:
        t = int(bad[0])
        return t, f"became {lap.losses[t]} at step {t}"
    above = lap.losses > lap.losses[0]
    if above[-1]:
        t = int(np.flatnonzero(~above)[-1]) + 1  # losses[0] is never above itself.
        return t, f"rose above its start ({lap.losses[0]:.3e}) at step {t} and ended at {lap.losses[-1]:.3e}"
    return None


def format_divergence_notes(problem: Problem, laps: Sequence[Lap]) -> str:
    """One line per run of ``laps`` that diverged, suggesting a smaller learning rate; empty when none did."""
    lines = []
    for lap in laps:
        found = divergence(lap)
        if found is None:
            continue
        default = problem.learning_rates[lap.name]
        smaller = default if default < lap.learning_rate else lap.learning_rate / 10
        lines.append(
            f"note: {lap.name}'s loss {found[1]}; try a smaller learning rate, e.g. --lr {lap.name}={smaller:g}"
        )
    return "\n".join(lines)


def _pyplot(what: str) -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend; exits naming ``what`` when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError as err:  # The core package does not depend on matplotlib.
        raise SystemExit(f'adaptive-tx: drawing {what} needs matplotlib: pip install "adaptive_tx[plot]"') from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw_surface(ax: Axes, problem: Problem) -> None:
    """The surface's contours and its minima on ``ax``, limited to ``problem.window``."""
    from matplotlib.colors import LogNorm

    (x0, x1), (y0, y1) = problem.window
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    grid = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float32)
    zs = np.asarray(jax.jit(jax.vmap(problem.fn))(grid)).reshape(xs.shape)
    if problem.minima:  # Log-spaced contours show the floor of a valley; f >= 0 on these surfaces.
        levels = np.geomspace(max(zs.min(), 1e-3), zs.max(), 30)
        ax.contourf(xs, ys, np.maximum(zs, levels[0]), levels=levels, norm=LogNorm(), cmap="Greys", alpha=0.6)
        ax.contour(xs, ys, zs, levels=levels, norm=LogNorm(), colors="grey", linewidths=0.4)
        mx, my = np.asarray(problem.minima).T
        ax.plot(mx, my, "k*", markersize=14, label="minimum", zorder=5)
    else:
        ax.contourf(xs, ys, zs, levels=30, cmap="Greys", alpha=0.6)
        ax.contour(xs, ys, zs, levels=30, colors="grey", linewidths=0.4)
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y")


def _label(lap: Lap) -> str:
    return f"{lap.name} (lr {lap.learning_rate:g})"


def _race_figure(problem: Problem, laps: Sequence[Lap]) -> Figure:
    """The race's picture: the surface's contours and each optimizer's path, in its colour of ``COLORS``."""
    plt = _pyplot("the PNG")
    fig, ax = plt.subplots(figsize=(8, 6.5), dpi=120)
    _draw_surface(ax, problem)
    for lap in laps:
        ax.plot(*lap.path.T, "-", color=COLORS[lap.name], linewidth=1.5, label=_label(lap))
        ax.plot(*lap.path[-1], "o", color=COLORS[lap.name], markersize=6)
    ax.plot(*problem.start, "ks", markersize=7, label="start")
    ax.set_title(f"{problem.name}: {len(laps[0].losses) - 1} steps" if laps else problem.name)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot(problem: Problem, laps: Sequence[Lap], out: str) -> None:
    """Write a PNG: the surface's contours and each optimizer's path."""
    plt = _pyplot("the PNG")
    fig = _race_figure(problem, laps)
    fig.savefig(out, format="png")
    plt.close(fig)


# An animation shows at most this many distinct frames: a 2000-step race stays well under 5 MB as a GIF.
MAX_FRAMES = 120
_FPS = 15
_HOLD_S = 2.0  # How long the last frame stays before the GIF loops.


def frame_steps(steps: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """The steps an animation of a ``steps``-step race draws: ``0`` and ``steps`` included, strictly increasing.

    Every step when there are at most ``max_frames``; otherwise ``max_frames`` steps spaced evenly in
    ``log(1 + t)``, so consecutive steps at the start, where the optimizers move most, and ever wider gaps later.
    """
    if steps + 1 <= max_frames:
        return np.arange(steps + 1)
    # Rounding merges the first log-spaced points into the same integers; ask for more until max_frames survive.
    # This ends: enough points give all steps + 1 > max_frames integers.
    chosen = np.array([0, steps])
    for n in itertools.count(max_frames):
        spaced = np.unique(np.rint(np.expm1(np.linspace(0.0, math.log1p(steps), n))).astype(int))
        spaced[-1] = steps  # Guard the end against rounding.
        if spaced.size > max_frames:
            break
        chosen = spaced
    return chosen


def _race_scene(problem: Problem, laps: Sequence[Lap]) -> tuple[Figure, Callable[[int], None]]:
    """The animation's figure and a function that draws step ``t`` on it (each marker at ``w_t``, its trail)."""
    plt = _pyplot("the animation")
    steps = len(laps[0].losses) - 1 if laps else 0
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=90)
    _draw_surface(ax, problem)
    drawn = []
    for lap in laps:
        color = COLORS[lap.name]
        (trail,) = ax.plot([], [], "-", color=color, linewidth=1.5)
        (marker,) = ax.plot([], [], "o", color=color, markersize=7, markeredgecolor="k", label=_label(lap), zorder=6)
        drawn.append((lap, trail, marker))
    ax.plot(*problem.start, "ks", markersize=6, label="start")
    # Outside the axes: it covers no path, and it stays put while the markers move.
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    title = ax.set_title("")

    def draw(t: int) -> None:
        for lap, trail, marker in drawn:
            trail.set_data(lap.path[: t + 1, 0], lap.path[: t + 1, 1])
            marker.set_data(lap.path[t : t + 1, 0], lap.path[t : t + 1, 1])
        title.set_text(f"{problem.name}: step {t} / {steps}")

    draw(steps)  # The longest title, for the layout.
    fig.tight_layout()
    return fig, draw


def _one_palette(frames: Sequence[Image.Image], exact: Sequence[tuple[int, int, int]]) -> list[Image.Image]:
    """``frames`` in one palette of 256 colours: the ``exact`` ones, and the rest by median cut of the last frame.

    Median cut counts pixels, so on its own it would merge a thin line's colour into the greys around it. Pillow
    maps a pixel to the given palette through a cache of coarse colour cells, which can pick a near entry over
    an exact one (Adam's blue became (0, 111, 174)), so the pixels of an exact colour are set to its entry after.
    """
    from PIL import Image

    last = frames[-1].convert("RGB")  # It holds every trail, so its colours are the animation's.
    base = (last.quantize(256 - len(exact), dither=Image.Dither.NONE).getpalette() or [])[: 3 * (256 - len(exact))]
    palette = Image.new("P", (1, 1))
    palette.putpalette([*base, *(c for rgb in exact for c in rgb)])
    indexed = []
    for frame in frames:
        rgb = frame.convert("RGB")
        image = rgb.quantize(palette=palette, dither=Image.Dither.NONE)
        pixels, index = np.asarray(rgb), np.array(image)
        for i, color in enumerate(exact):
            index[(pixels == color).all(axis=-1)] = len(base) // 3 + i
        image.frombytes(index.tobytes())
        indexed.append(image)
    return indexed


def _gif_writer(fps: int) -> AbstractMovieWriter:
    """matplotlib's ``PillowWriter`` with one palette for every frame, which keeps the figure's line colours.

    ``PillowWriter`` lets Pillow pick a palette per frame; the greys then shift a little from frame to frame, so
    each frame is stored whole (4 MB for the default race). With one palette, a frame stores only the box in which
    something moved.
    """
    from matplotlib.animation import PillowWriter
    from matplotlib.colors import to_rgb

    class OnePaletteWriter(PillowWriter):
        def finish(self) -> None:
            frames = getattr(self, "_frames", None)  # What PillowWriter grabbed: RGB images (RGBA if transparent).
            if frames:
                # One entry per optimizer, and black: a handful of the 256.
                colors = [to_rgb(line.get_color()) for ax in self.fig.axes for line in ax.get_lines()]
                exact = dict.fromkeys((round(255 * r), round(255 * g), round(255 * b)) for r, g, b in colors)
                self._frames = _one_palette(frames, list(exact))
            super().finish()

    return OnePaletteWriter(fps=fps)


def animate(problem: Problem, laps: Sequence[Lap], out: str) -> int:
    """Write the race as a GIF or, for a ``.mp4`` name, an MP4 (needs ffmpeg); returns the number of frames."""
    plt = _pyplot("the animation")
    from matplotlib.animation import FFMpegWriter

    fig, draw = _race_scene(problem, laps)
    steps = frame_steps(len(laps[0].losses) - 1 if laps else 0)
    writer = FFMpegWriter(fps=_FPS) if Path(out).suffix.lower() == ".mp4" else _gif_writer(_FPS)
    with writer.saving(fig, out, dpi=fig.dpi):
        for t in steps:
            draw(int(t))
            writer.grab_frame()
        for _ in range(round(_HOLD_S * _FPS) - 1):  # Hold the end; the GIF merges these into one longer frame.
            writer.grab_frame()
    plt.close(fig)
    return int(steps.size)


def _lr_parser(names: Collection[str]) -> Callable[[str], tuple[str, float]]:
    """``--lr NAME=VALUE``, with ``NAME`` one of ``names``."""

    def parse(text: str) -> tuple[str, float]:
        name, sep, value = text.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
        if name not in names:
            raise argparse.ArgumentTypeError(f"unknown optimizer {name!r}; choose from {', '.join(names)}")
        try:
            lr = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"learning rate for {name} must be a number, got {value!r}") from None
        if not (math.isfinite(lr) and lr >= 0):
            raise argparse.ArgumentTypeError(f"learning rate for {name} must be finite and >= 0, got {value!r}")
        return name, lr

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _optimizer_list_parser(names: Collection[str]) -> Callable[[str], list[str]]:
    """``--optimizers A,B,...``, each one of ``names``."""

    def parse(text: str) -> list[str]:
        chosen = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in names]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown optimizer {', '.join(map(repr, unknown)) or '(none given)'}; choose from {', '.join(names)}"
            )
        return chosen

    return parse


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _output_path(text: str, suffixes: Sequence[str], what: str, example: str = "race") -> str:
    """A file name ending in one of ``suffixes`` (any case), in an existing, writable directory.

    ``suffixes[0]`` is appended to a name without a suffix; ``what`` opens the message for any other suffix;
    ``example`` names the file a directory's message suggests.
    """
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        example = str(path / f"{example}{suffixes[0]}")
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; name a file in it, e.g. {example!r}")
    if not path.suffix:
        text = text + suffixes[0]
        path = Path(text)
    elif path.suffix.lower() not in suffixes:
        raise argparse.ArgumentTypeError(f"{what}: expected a name ending in {' or '.join(suffixes)}, got {text!r}")
    parent = path.parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} is not writable")
    return text


def _png_path(text: str) -> str:
    """``--out``: a ``.png`` path in an existing, writable directory; ``.png`` is appended when there is no suffix."""
    return _output_path(text, (".png",), "the race writes a PNG")


def _animation_path(text: str) -> str:
    """``--animate``: a ``.gif`` or ``.mp4`` path, like ``--out``; ``.mp4`` only when ffmpeg is on the PATH."""
    text = _output_path(text, (".gif", ".mp4"), "the animation is a GIF or an MP4")
    if Path(text).suffix.lower() == ".mp4" and shutil.which("ffmpeg") is None:
        gif = str(Path(text).with_suffix(".gif"))
        raise argparse.ArgumentTypeError(
            f"writing an MP4 needs ffmpeg, which is not on the PATH; install ffmpeg or write a GIF, e.g. {gif!r}"
        )
    return text


def _missing(module: str) -> bool:
    """Whether the optional dependency ``module`` cannot be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return True
    return False


def _problem_help() -> str:
    lines = ["problems (--problem) and their default learning rates:"]
    for p in PROBLEMS.values():
        lrs = ", ".join(f"{n}={p.learning_rates[n]:g}" for n in OPTIMIZERS)
        lines.append(f"  {p.name:<13} {p.description}\n  {'':<13} {lrs}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- adaptive-tx train

# Plain SGD and the lecture's five on the digits MLP (64-500-300-10, batch 100), each with one learning rate.
# The anchors are the CPU digits analogue of Zeiler 2012's Tables 1 and 2 (test error after 6 epochs), and
# a sweep over 1, 0.3, ..., 3e-4 with this command's defaults (20 epochs, seed 0; test error in brackets):
# - sgd 0.1: lr 1 is the analogue's best (1.9%), but it sits at the edge of divergence (momentum at the
#   same step size diverges), which another --seed can cross; 0.1 is the next decade (3.6%) [3.1%].
# - adagrad 0.01: the analogue's best, 1.4% (Zeiler's Table 1 also peaks at 0.01) [1.4%].
# - rmsprop 1e-3: Tieleman and Hinton's suggestion and the usual default; the analogue has no RMSprop [1.4%].
# - adadelta 1 with rho = 0.95, eps = 1e-6: the paper's settings and its Table 2's best; no learning rate
#   [1.7%].
# - momentum 1, beta = 0.9: the analogue's momentum 0.9 at lr 0.1 (1.1%) sums the gradients; this one
#   averages them (v_t = beta v + (1 - beta) g, v is 1 - beta times that sum), so the same steps take
#   lr 0.1 / (1 - beta) = 1 [2.8%].
# - adam 1e-3: Kingma and Ba's default [1.7%].
TRAIN_OPTIMIZERS: dict[str, tuple[Callable[[float], optax.GradientTransformation], float]] = {
    "sgd": (optax.sgd, 0.1),
    "adagrad": (atx.adagrad, 0.01),
    "rmsprop": (atx.rmsprop, 1e-3),
    "adadelta": (functools.partial(atx.adadelta, rho=0.95, eps=1e-6), 1.0),
    "momentum": (atx.momentum, 1.0),
    "adam": (atx.adam, 1e-3),
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One optimizer's training run on the digits."""

    name: str
    learning_rate: float
    history: digits.History


def train_all(
    learning_rates: dict[str, float], data: digits.Digits, epochs: int, seed: int, progress: bool = False
) -> list[Run]:
    """Train the digits MLP once per optimizer named in ``learning_rates``, from the same initial weights."""
    bar: Callable | None = None
    if progress:
        from tqdm import tqdm

        bar = tqdm
    runs = []
    for name, lr in learning_rates.items():
        make, _ = TRAIN_OPTIMIZERS[name]
        each = None if bar is None else functools.partial(bar, desc=f"{name:<8}", unit="epoch")
        history = digits.train(make(lr), data, epochs=epochs, seed=seed, progress=each)
        runs.append(Run(name, lr, history))
    return runs


def format_train_table(runs: Sequence[Run]) -> str:
    """The runs' final metrics as a fixed-width text table."""
    header = ("optimizer", "learning rate", "train loss", "train accuracy", "test accuracy")
    rows = [
        (
            run.name,
            f"{run.learning_rate:g}",
            f"{run.history.train_loss[-1]:.3e}",
            f"{run.history.train_accuracy[-1]:.4f}",
            f"{run.history.test_accuracy[-1]:.4f}",
        )
        for run in runs
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _train_figure(runs: Sequence[Run], title: str) -> Figure:
    """The runs' training loss and test accuracy, epoch by epoch, each optimizer in its colour of ``COLORS``."""
    plt = _pyplot("the PNG")
    from matplotlib.ticker import MaxNLocator

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    for run in runs:
        epochs = np.arange(len(run.history.train_loss))
        label = f"{run.name} (lr {run.learning_rate:g})"
        ax_loss.plot(epochs, run.history.train_loss, "-o", markersize=3, color=COLORS[run.name], label=label)
        ax_acc.plot(epochs, run.history.test_accuracy, "-o", markersize=3, color=COLORS[run.name], label=label)
    ax_loss.set(yscale="log", xlabel="epoch", ylabel="training loss (cross-entropy)", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="Test accuracy (360 images)")
    # Zoomed on the trained epochs: before training every run is at chance (about 0.1), off the bottom.
    trained = [a for run in runs for a in run.history.test_accuracy[1:] if np.isfinite(a)]
    ax_acc.set_ylim(max(0.0, min(trained, default=0.0) - 0.02), 1.0)
    last_epoch = max((len(run.history.train_loss) - 1 for run in runs), default=1)
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.set_xlim(0, last_epoch)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_train(runs: Sequence[Run], out: str, title: str) -> None:
    """Write a PNG: each run's training loss and test accuracy, epoch by epoch."""
    plt = _pyplot("the PNG")
    fig = _train_figure(runs, title)
    fig.savefig(out, format="png")
    plt.close(fig)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {text!r}") from None
    if not 0 <= value < 2**32:  # scikit-learn's random_state takes 32 bits.
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to 2**32 - 1, got {text!r}")
    return value


def _train_png_path(text: str) -> str:
    """``--out`` of ``train``: checked like the race's ``--out``."""
    return _output_path(text, (".png",), "train writes a PNG", example="train")


def _add_optimizer_arguments(parser: argparse.ArgumentParser, names: Collection[str], verb: str, example: str) -> None:
    """``--lr NAME=VALUE`` and ``--optimizers A,B,...``, over the optimizers ``names``."""
    parser.add_argument(
        "--lr",
        type=_lr_parser(names),
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"override one optimizer's learning rate, e.g. --lr {example} (repeatable)",
    )
    parser.add_argument(
        "--optimizers",
        type=_optimizer_list_parser(names),
        default=list(names),
        metavar="A,B,...",
        help=f"which optimizers to {verb} (default: all of {','.join(names)})",
    )


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    defaults = ", ".join(f"{n}={lr:g}" for n, (_, lr) in TRAIN_OPTIMIZERS.items())
    train_parser = commands.add_parser(
        "train",
        help="train a digits MLP with SGD and the five optimizers; print a table and write a PNG",
        description=(
            "Train an MLP (64-500-300-10, ReLU) on scikit-learn's 8x8 digits (1437 training, 360 test "
            "images) with plain SGD and each of the five optimizers, from the same initial weights, in "
            "minibatches of 100. Prints each run's final training loss, training accuracy and test "
            'accuracy, and plots the curves. Needs scikit-learn: pip install "adaptive_tx[notebooks]".'
        ),
        epilog=f"default learning rates: {defaults} (adadelta with rho=0.95, eps=1e-6)\n\n"
        "example:\n  adaptive-tx train --epochs 6 --optimizers sgd,adadelta --lr sgd=0.3",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_parser.add_argument("--epochs", type=_positive_int, default=20, help="passes over the data (default: 20)")
    train_parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seeds the split, the initial weights and the shuffles (default: 0)",
    )
    _add_optimizer_arguments(train_parser, TRAIN_OPTIMIZERS, "train with", "sgd=0.3")
    train_parser.add_argument(
        "--out",
        type=_train_png_path,
        default="train.png",
        help="where to write the PNG of the curves (default: train.png); .png is appended to a name without a "
        "suffix, any other suffix is an error, and the directory must exist. Without matplotlib the table "
        "still prints and the PNG is skipped",
    )


def train_main(args: argparse.Namespace) -> int:
    """``adaptive-tx train``, once its arguments are parsed."""
    if _missing("sklearn"):
        raise SystemExit('adaptive-tx train: the digits data needs scikit-learn: pip install "adaptive_tx[notebooks]"')
    no_matplotlib = _missing("matplotlib")  # Checked before training, which takes a while.
    overrides = dict(args.lr)
    learning_rates = {n: overrides.get(n, TRAIN_OPTIMIZERS[n][1]) for n in args.optimizers}
    data = digits.load(args.seed)
    runs = train_all(learning_rates, data, args.epochs, args.seed, progress=not _missing("tqdm"))
    title = (
        f"digits: MLP 64-500-300-10, {len(data.y_train)} training / {len(data.y_test)} test images, "
        f"batch 100; {args.epochs} epochs, seed {args.seed}"
    )
    print(title)
    print(format_train_table(runs))
    if no_matplotlib:
        print(f'skipped {args.out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"')
        return 0
    plot_train(runs, args.out, title)
    print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``adaptive-tx``."""
    parser = argparse.ArgumentParser(
        prog="adaptive-tx",
        description=(
            "adaptive_tx: the lecture's adaptive optimizers (AdaGrad, RMSprop, Adadelta, Momentum, Adam) as "
            "Optax transformations. The `race` command runs all five on a 2-D test surface from the same "
            "start, prints a table (final loss, distance to the nearest minimum, steps until the loss "
            "reaches a target) and draws their paths over the surface's contours, as a picture and, with "
            "--animate, as an animation. The `train` command trains a small MLP on scikit-learn's digits "
            "with plain SGD and each of the five, prints their final training loss and training and test "
            "accuracy, and plots the curves."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_problem_help() + "\n\nexample:\n  adaptive-tx race --problem beale --steps 3000 --lr adam=0.05",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train_parser(commands)
    race_parser = commands.add_parser(
        "race",
        help="race the five optimizers on a 2-D surface; print a table and write a PNG (and a GIF with --animate)",
        description=(
            "Race the five optimizers on a 2-D surface; print a table and write a PNG, and with --animate a GIF "
            "(or MP4) of the optimizers moving over the surface step by step."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_problem_help(),
    )
    race_parser.add_argument(
        "--problem", choices=list(PROBLEMS), default="rosenbrock", help="the surface (default: rosenbrock)"
    )
    race_parser.add_argument(
        "--steps", type=_positive_int, default=2000, help="optimizer steps per run (default: 2000)"
    )
    _add_optimizer_arguments(race_parser, OPTIMIZERS, "race", "adam=0.01")
    race_parser.add_argument(
        "--target",
        type=_finite_float,
        default=None,
        help="loss a run must reach to count as arrived, a finite number (default: the problem's, 1e-4; -1 for saddle)",
    )
    race_parser.add_argument(
        "--out",
        type=_png_path,
        default="race.png",
        help="where to write the PNG (default: race.png); .png is appended to a name without a suffix, any "
        "other suffix is an error, and the directory must exist. Without matplotlib (pip install "
        '"adaptive_tx[plot]") the table still prints and the PNG is skipped',
    )
    race_parser.add_argument(
        "--animate",
        type=_animation_path,
        default=None,
        metavar="FILE",
        help="also write an animation of the race, each optimizer a marker with its trail moving over the "
        "contours, with a step counter: a .gif, or an .mp4 if ffmpeg is installed (default: none). At most "
        f"{MAX_FRAMES} frames, every step at the start and ever fewer later, where the optimizers move less. "
        ".gif is appended to a name without a suffix, any other suffix is an error, and the directory must "
        "exist. Independent of --out, which is still written; skipped without matplotlib, like the PNG",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adaptive-tx`` command."""
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return train_main(args)
    problem = PROBLEMS[args.problem]
    overrides = dict(args.lr)
    learning_rates = {n: overrides.get(n, problem.learning_rates[n]) for n in args.optimizers}
    target = problem.target if args.target is None else args.target
    no_matplotlib = _missing("matplotlib")  # Checked before the race, which can take a while.
    laps = race(problem, args.steps, learning_rates, target)
    print(f"{problem.name}: {problem.description}; {args.steps} steps")
    print(format_table(problem, laps, target))
    notes = format_divergence_notes(problem, laps)
    if notes:
        print(notes)
    if no_matplotlib:
        print(f'skipped {args.out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"')
        if args.animate is not None:
            print(f'skipped {args.animate}: drawing the animation needs matplotlib: pip install "adaptive_tx[plot]"')
        return 0
    plot(problem, laps, args.out)
    print(f"wrote {args.out}")
    if args.animate is not None:
        frames = animate(problem, laps, args.animate)
        print(f"wrote {args.animate} ({frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
