"""adaptive_tx.palette: one colour per optimizer, the same in the race, its animation, train's curves and the
notebooks."""

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from adaptive_tx import cli, digits
from adaptive_tx.palette import COLORS, color_of
from adaptive_tx.problems import PROBLEMS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.stem: path for path in sorted((ROOT / "notebooks").glob("*.ipynb"))}

# Okabe and Ito's eight colours, as their paper gives them in RGB (black, orange, sky blue, bluish green,
# yellow, blue, vermillion, reddish purple).
OKABE_ITO = {
    (0, 0, 0),
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
}


def rgb(hex_color: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` as three 8-bit integers."""
    assert re.fullmatch(r"#[0-9A-Fa-f]{6}", hex_color), hex_color
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def line_hex(line) -> str:
    from matplotlib.colors import to_hex

    return to_hex(line.get_color()).upper()


# ----------------------------------------------------------------------------- the palette itself


def test_every_optimizer_drawn_has_its_own_okabe_ito_colour():
    assert set(cli.OPTIMIZERS) | set(cli.TRAIN_OPTIMIZERS) <= set(COLORS)
    assert COLORS["gd"] == COLORS["sgd"]  # One algorithm under the notebooks' name and train's.
    algorithms = {name: hex_color for name, hex_color in COLORS.items() if name != "gd"}
    assert len(set(algorithms.values())) == len(algorithms) == 6
    colors = {rgb(hex_color) for hex_color in algorithms.values()}
    # As the docstring says: six of Okabe-Ito's eight, without black (the minima, starts and reference lines)
    # and yellow.
    assert colors == OKABE_ITO - {(0, 0, 0), (240, 228, 66)}


@pytest.mark.parametrize(
    ("label", "name"),
    [("adam", "adam"), ("AdaGrad", "adagrad"), ("RMSprop 0.99", "rmsprop"), ("GD (optax.sgd)", "sgd"), ("SGD", "sgd")],
)
def test_color_of_reads_the_labels_first_word_in_any_case(label, name):
    assert color_of(label) == COLORS[name]


@pytest.mark.parametrize("label", ["lion", "", " adam", "heavy ball, lr 0.01"])
def test_color_of_refuses_a_label_that_names_no_optimizer(label):
    with pytest.raises(KeyError, match="names no optimizer of the palette"):
        color_of(label)


def test_the_palette_imports_nothing():
    # Plain data: the package does not depend on matplotlib, and neither does its palette.
    tree = ast.parse((ROOT / "adaptive_tx" / "palette.py").read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(node) for node in imports] == ["from __future__ import annotations"]


# ----------------------------------------------------------------------------- the command's pictures


# Both orders: the colours used to follow the position (tab10), so the same optimizer changed colour between
# the race (Adam fifth, purple) and train (Adam sixth, brown).
@pytest.mark.parametrize("order", [list(cli.OPTIMIZERS), list(reversed(cli.OPTIMIZERS))], ids=["lecture", "reversed"])
def test_race_png_and_animation_colour_each_optimizer_by_the_palette(order):
    import matplotlib.pyplot as plt

    problem = PROBLEMS["quadratic"]
    laps = cli.race(problem, 5, {name: problem.learning_rates[name] for name in order})
    fig = cli._race_figure(problem, laps)
    scene, _ = cli._race_scene(problem, laps)
    try:
        (ax,) = fig.axes
        for lap in laps:
            (path,) = [line for line in ax.get_lines() if line.get_label() == cli._label(lap)]
            (end,) = [line for line in ax.get_lines() if np.array_equal(line.get_xydata(), lap.path[-1:])]
            assert line_hex(path) == line_hex(end) == COLORS[lap.name], lap.name
        (ax,) = scene.axes
        for lap in laps:
            (marker,) = [line for line in ax.get_lines() if line.get_label() == cli._label(lap)]
            assert line_hex(marker) == COLORS[lap.name], lap.name
        # Every coloured line of the animation (a trail and a marker per optimizer) is one of the palette's.
        drawn = [line_hex(line) for line in ax.get_lines() if line_hex(line) != "#000000"]
        assert sorted(drawn) == sorted(2 * [COLORS[name] for name in order])
    finally:
        plt.close(fig)
        plt.close(scene)


def test_train_png_colours_each_optimizer_by_the_palette():
    import matplotlib.pyplot as plt

    # The colours depend on the names only: two epochs of made-up metrics stand in for the digits runs.
    def history(seed):
        rng = np.random.default_rng(seed)
        loss, accuracy = rng.uniform(0.01, 2.0, 3), rng.uniform(0.8, 1.0, 3)
        return digits.History(loss, accuracy, loss, accuracy, params=[])

    order = ["adam", "sgd", "momentum", "adadelta", "rmsprop", "adagrad"]  # Not train's order.
    assert sorted(order) == sorted(cli.TRAIN_OPTIMIZERS)
    runs = [cli.Run(name, cli.TRAIN_OPTIMIZERS[name][1], history(i)) for i, name in enumerate(order)]
    fig = cli._train_figure(runs, "title")
    try:
        ax_loss, ax_acc = fig.axes
        for ax, metric in ((ax_loss, "train_loss"), (ax_acc, "test_accuracy")):
            assert [line.get_label() for line in ax.get_lines()] == [f"{r.name} (lr {r.learning_rate:g})" for r in runs]
            for run, line in zip(runs, ax.get_lines(), strict=True):
                assert line_hex(line) == COLORS[run.name], run.name
                np.testing.assert_array_equal(line.get_ydata(), getattr(run.history, metric))
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- the notebooks
# Which notebooks draw optimizers side by side. The others draw one optimizer's settings, statistics, layers or
# state formats, whose lines may take other colours. A new notebook must be placed in one of the two.
DRAWS_OPTIMIZERS = {"01_from_adagrad_to_adam", "02_adadelta_epsilon", "04_generalization"}
DRAWS_ONE_OPTIMIZER = {"03_adam_bias_correction", "05_diagnostics", "06_memory"}
LINE_CALLS = {"plot", "loglog", "semilogx", "semilogy"}


def code_cells(stem: str) -> list[str]:
    import nbformat

    notebook = nbformat.read(NOTEBOOKS[stem], as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def uncoloured_or_positional_lines(source: str) -> list[str]:
    """The line-drawing calls of ``source`` with no colour of their own (matplotlib's cycle picks one by
    position) or a positional one ("C0", f"C{k}", "tab:blue"), as source text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LINE_CALLS):
            continue
        color = next((k.value for k in node.keywords if k.arg in ("color", "c")), None)
        fmt = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if color is None:
            positional = not any(set(f) & set("bgrcmykw") for f in fmt)  # "k:" is black; "o-" the cycle's.
        else:
            text = ast.unparse(color)
            positional = bool(re.match(r"""f?["'](C\d|C\{|tab:)""", text))
        if positional:
            found.append(ast.get_source_segment(source, node) or ast.unparse(node))
    return found


def test_every_notebook_is_placed():
    assert DRAWS_OPTIMIZERS | DRAWS_ONE_OPTIMIZER == set(NOTEBOOKS)
    assert not DRAWS_OPTIMIZERS & DRAWS_ONE_OPTIMIZER


@pytest.mark.parametrize("stem", sorted(NOTEBOOKS))
def test_no_notebook_colours_by_tab10(stem):
    source = "\n".join(code_cells(stem))
    assert "tab10" not in source and "get_cmap" not in source


@pytest.mark.parametrize("stem", sorted(DRAWS_OPTIMIZERS))
def test_notebooks_colour_optimizers_from_the_palette(stem):
    cells = code_cells(stem)
    assert "from adaptive_tx.palette import" in cells[0]  # With the other imports.
    drawing = [source for source in cells if re.search(r"\bCOLORS\[|\bcolor_of\(", source)]
    assert drawing, stem
    # Where a cell draws an optimizer in its colour, every line it draws has a colour of its own: nothing by
    # position (matplotlib's cycle, "C0", "tab:blue") sits beside the palette in a figure.
    for source in drawing:
        assert uncoloured_or_positional_lines(source) == [], source


def test_the_check_finds_lines_coloured_by_position():
    # Control for the test above: the ways the notebooks coloured their lines before the palette.
    source = """
ax.plot(t, x, label=name)
ax.plot(t, x, "o-", label=name)
ax.loglog(t, x, color=f"C{k}")
ax.semilogy(t, x, color="C1")
ax.plot(t, x, "--", color="tab:orange")
ax.plot(t, x, color=COLORS[name])
ax.plot(t, x, "k:")
ax.plot(t, x, color=shades(0.5))
"""
    assert uncoloured_or_positional_lines(source) == source.strip().splitlines()[:5]
