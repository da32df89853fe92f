"""The ``adaptive-tx`` command: race the lecture's five optimizers on a 2-D surface."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np
import optax

import adaptive_tx as atx
from adaptive_tx.problems import PROBLEMS, Problem, trajectory

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


def plot(problem: Problem, laps: Sequence[Lap], out: str) -> None:
    """Write a PNG: the surface's contours and each optimizer's path."""
    try:
        import matplotlib
    except ImportError as err:  # The core package does not depend on matplotlib.
        raise SystemExit('adaptive-tx: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"') from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    (x0, x1), (y0, y1) = problem.window
    xs, ys = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
    grid = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float32)
    zs = np.asarray(jax.jit(jax.vmap(problem.fn))(grid)).reshape(xs.shape)

    fig, ax = plt.subplots(figsize=(8, 6.5), dpi=120)
    if problem.minima:  # Log-spaced contours show the floor of a valley; f >= 0 on these surfaces.
        levels = np.geomspace(max(zs.min(), 1e-3), zs.max(), 30)
        ax.contourf(xs, ys, np.maximum(zs, levels[0]), levels=levels, norm=LogNorm(), cmap="Greys", alpha=0.6)
        ax.contour(xs, ys, zs, levels=levels, norm=LogNorm(), colors="grey", linewidths=0.4)
        mx, my = np.asarray(problem.minima).T
        ax.plot(mx, my, "k*", markersize=14, label="minimum", zorder=5)
    else:
        ax.contourf(xs, ys, zs, levels=30, cmap="Greys", alpha=0.6)
        ax.contour(xs, ys, zs, levels=30, colors="grey", linewidths=0.4)
    palette = plt.get_cmap("tab10")
    for i, lap in enumerate(laps):
        color = palette(i % 10)
        ax.plot(*lap.path.T, "-", color=color, linewidth=1.5, label=f"{lap.name} (lr {lap.learning_rate:g})")
        ax.plot(*lap.path[-1], "o", color=color, markersize=6)
    ax.plot(*problem.start, "ks", markersize=7, label="start")
    ax.set(xlim=(x0, x1), ylim=(y0, y1), xlabel="x", ylabel="y")
    ax.set_title(f"{problem.name}: {len(laps[0].losses) - 1} steps" if laps else problem.name)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)


def _parse_lr(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if name not in OPTIMIZERS:
        raise argparse.ArgumentTypeError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    try:
        lr = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rate for {name} must be a number, got {value!r}") from None
    if not (math.isfinite(lr) and lr >= 0):
        raise argparse.ArgumentTypeError(f"learning rate for {name} must be finite and >= 0, got {value!r}")
    return name, lr


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _optimizer_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPTIMIZERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer {', '.join(map(repr, unknown)) or '(none given)'}; choose from {', '.join(OPTIMIZERS)}"
        )
    return names


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _png_path(text: str) -> str:
    """``--out``: a ``.png`` path in an existing, writable directory; ``.png`` is appended when there is no suffix."""
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; name a file in it, e.g. {str(path / 'race.png')!r}")
    if not path.suffix:
        text = text + ".png"
        path = Path(text)
    elif path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"the race writes a PNG: expected a name ending in .png, got {text!r}")
    parent = path.parent
    if not parent.exists():
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} does not exist")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{str(parent)!r} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"directory {str(parent)!r} is not writable")
    return text


def _matplotlib_missing() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return True
    return False


def _problem_help() -> str:
    lines = ["problems (--problem) and their default learning rates:"]
    for p in PROBLEMS.values():
        lrs = ", ".join(f"{n}={p.learning_rates[n]:g}" for n in OPTIMIZERS)
        lines.append(f"  {p.name:<11} {p.description}\n  {'':<11} {lrs}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``adaptive-tx``."""
    parser = argparse.ArgumentParser(
        prog="adaptive-tx",
        description=(
            "adaptive_tx: the lecture's adaptive optimizers (AdaGrad, RMSprop, Adadelta, Momentum, Adam) as "
            "Optax transformations. The `race` command runs all five on a 2-D test surface from the same "
            "start, prints a table (final loss, distance to the nearest minimum, steps until the loss "
            "reaches a target) and draws their paths over the surface's contours."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_problem_help() + "\n\nexample:\n  adaptive-tx race --problem beale --steps 3000 --lr adam=0.05",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    race_parser = commands.add_parser(
        "race",
        help="race the five optimizers on a 2-D surface; print a table and write a PNG",
        description="Race the five optimizers on a 2-D surface; print a table and write a PNG.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_problem_help(),
    )
    race_parser.add_argument(
        "--problem", choices=list(PROBLEMS), default="rosenbrock", help="the surface (default: rosenbrock)"
    )
    race_parser.add_argument(
        "--steps", type=_positive_int, default=2000, help="optimizer steps per run (default: 2000)"
    )
    race_parser.add_argument(
        "--lr",
        type=_parse_lr,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one optimizer's learning rate, e.g. --lr adam=0.01 (repeatable)",
    )
    race_parser.add_argument(
        "--optimizers",
        type=_optimizer_list,
        default=list(OPTIMIZERS),
        metavar="A,B,...",
        help=f"which optimizers to race (default: all of {','.join(OPTIMIZERS)})",
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``adaptive-tx`` command."""
    args = build_parser().parse_args(argv)
    problem = PROBLEMS[args.problem]
    overrides = dict(args.lr)
    learning_rates = {n: overrides.get(n, problem.learning_rates[n]) for n in args.optimizers}
    target = problem.target if args.target is None else args.target
    no_matplotlib = _matplotlib_missing()  # Checked before the race, which can take a while.
    laps = race(problem, args.steps, learning_rates, target)
    print(f"{problem.name}: {problem.description}; {args.steps} steps")
    print(format_table(problem, laps, target))
    notes = format_divergence_notes(problem, laps)
    if notes:
        print(notes)
    if no_matplotlib:
        print(f'skipped {args.out}: drawing the PNG needs matplotlib: pip install "adaptive_tx[plot]"')
        return 0
    plot(problem, laps, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
