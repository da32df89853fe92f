"""The 2-D surfaces of the race: gradient_descent_viz's five against their program's formulas, their minima,
and the race's default learning rates on them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptive_tx import cli
from adaptive_tx.problems import PROBLEMS

# ----------------------------------------------------------------------------- independent transcriptions
# gradient_descent_viz's f(x, z) (src/gradient_descent.cpp), transcribed statement by statement into float64
# NumPy, in its own variables: (x, z) is our (x, y). These are the program's values, with no shift.


def _np_local_minimum(x, z):
    z = z * 1.4
    return (
        -2 * np.exp(-((x - 1) * (x - 1) + z * z) / 0.2)
        - 6.0 * np.exp(-((x + 1) * (x + 1) + z * z) / 0.2)
        + x * x
        + z * z
    )


def _np_saddle_point(x, z):
    return np.sin(x) + z * z


def _np_ecliptic_bowl(x, z):
    x = x / 2.0
    z = z / 2.0
    return -np.exp(-(x * x + 5 * z * z)) + x * x + 0.5 * z * z


def _np_hills(x, z):
    z = z * 1.4
    return (
        2 * np.exp(-((x - 1) * (x - 1) + z * z) / 0.2)
        + 6.0 * np.exp(-((x + 1) * (x + 1) + z * z) / 0.2)
        - 2 * np.exp(-((x - 1) * (x - 1) + (z + 1) * (z + 1)) / 0.2)
        + x * x
        + z * z
    )


def _np_plateau(x, z):
    x = x * 10
    z = z * 10
    r = np.sqrt(z * z + x * x) + 0.01
    return -np.sin(r) / r + 0.01 * r * r


LILIPADS = {
    "local_minimum": _np_local_minimum,
    "saddle_point": _np_saddle_point,
    "ecliptic_bowl": _np_ecliptic_bowl,
    "hills": _np_hills,
    "plateau": _np_plateau,
}
lilipads = pytest.mark.parametrize("name", LILIPADS)

# A few points of the domain [-2, 2]^2: the start, the corners' neighbourhood, off-axis points, the origin.
POINTS = np.array(
    [[1.5, 1.5], [0.0, 0.0], [-1.3, 0.7], [0.4, -1.9], [2.0, -2.0], [-2.0, 2.0], [0.9, -0.65], [-1.0, 0.1]]
)


def _f64(problem, w):
    with jax.enable_x64(True):
        return float(problem.fn(jnp.asarray(w, jnp.float64)))


def _grid(lo_hi, n):
    (x0, x1), (y0, y1) = lo_hi
    return np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))


def test_the_lilipads_surfaces_are_registered_with_the_programs_setup():
    for name in LILIPADS:
        problem = PROBLEMS[name]
        assert problem.name == name
        assert problem.start == (1.5, 1.5)  # ((7 max + min) / 8, same) on [-2, 2].
        assert problem.window == ((-2.0, 2.0), (-2.0, 2.0))
        assert len(problem.minima) == 1 and problem.target == 1e-4
        assert set(problem.learning_rates) == set(cli.OPTIMIZERS)


@lilipads
def test_formula_matches_the_program_up_to_the_shift(name):
    # Each surface is the program's f minus its minimum: differences of values are the program's differences.
    problem, f = PROBLEMS[name], LILIPADS[name]
    ours = np.array([_f64(problem, w) for w in POINTS])
    theirs = f(POINTS[:, 0], POINTS[:, 1])
    # float64, O(10) values, a few operations each: rounding is ~1e-15; 1e-12 leaves room for exp and sin.
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], rtol=0, atol=1e-12)
    # Control: the check can fail; a surface off by a scaled term of its formula is seen.
    assert np.abs((ours - ours[0]) - 1.01 * (theirs - theirs[0])).max() > 1e-3


@lilipads
def test_float32_values_and_gradients_are_finite_and_close_to_float64(name):
    problem = PROBLEMS[name]
    xs, ys = _grid(problem.window, 41)  # Includes the origin and the listed minimum's neighbourhood.
    points = np.stack([xs.ravel(), ys.ravel()], axis=-1)
    points = np.concatenate([points, np.asarray(problem.minima), [problem.start]])
    w32 = jnp.asarray(points, jnp.float32)
    values = np.asarray(jax.vmap(problem.fn)(w32))
    grads = np.asarray(jax.vmap(jax.grad(problem.fn))(w32))
    assert np.isfinite(values).all() and np.isfinite(grads).all()  # The plateau's root included, at 0.
    exact = LILIPADS[name](points[:, 0], points[:, 1]) - LILIPADS[name](*np.asarray(problem.minima[0]))
    # Values are below 25 on the window; float32 rounds each of a few operations by 6e-8 relative: 2e-5.
    np.testing.assert_allclose(values, exact, rtol=0, atol=2e-5)


def _np_gradient(f, w, h=1e-6):
    """Central differences in float64: truncation h^2 |f'''| / 6 ~ 1e-11, rounding ~eps |f| / h ~ 1e-9."""
    x, y = w
    return np.array([(f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)])


@lilipads
def test_the_listed_minimum_is_the_lowest_point_of_the_window(name):
    problem, f = PROBLEMS[name], LILIPADS[name]
    (minimum,) = problem.minima
    f_min = f(*minimum)
    xs, ys = _grid(problem.window, 2001)  # Spacing 2e-3.
    values = f(xs, ys)
    # No grid point lies below it (float64 rounding of O(10) values: 1e-13)...
    assert values.min() >= f_min - 1e-13
    # ...and the grid's lowest point is in its basin, within a grid cell of it.
    i = np.unravel_index(np.argmin(values), values.shape)
    assert np.hypot(xs[i] - minimum[0], ys[i] - minimum[1]) < 2e-3 * np.sqrt(2)
    # The shift puts the minimum at 0 (in float64).
    assert abs(_f64(problem, minimum)) < 1e-12


@pytest.mark.parametrize("name", [n for n in LILIPADS if n != "plateau"])
def test_the_listed_minimum_is_stationary(name):
    problem, f = PROBLEMS[name], LILIPADS[name]
    (minimum,) = problem.minima
    # The program's own formula, differentiated numerically: at most ~1e-9 of error (see _np_gradient).
    assert np.abs(_np_gradient(f, minimum)).max() < 1e-8
    # Our formula, differentiated exactly in float64: the minima are stored to 16 digits, and the Hessian's
    # largest eigenvalue is 121 (local_minimum), so the gradient there is at most ~121 * 2e-16 plus rounding.
    with jax.enable_x64(True):
        gradient = np.asarray(jax.grad(problem.fn)(jnp.asarray(minimum, jnp.float64)))
        hessian = np.asarray(jax.hessian(problem.fn)(jnp.asarray(minimum, jnp.float64)))
    assert np.abs(gradient).max() < 1e-12
    assert np.linalg.eigvalsh(hessian).min() > 0  # A minimum, not a saddle.


def test_a_newton_search_from_the_grid_finds_the_listed_minima():
    # The search the constants came from, repeated with NumPy: the grid's lowest point, then Newton steps on a
    # central-difference gradient and Hessian of the program's formula.
    for name in ["local_minimum", "hills"]:
        problem, f = PROBLEMS[name], LILIPADS[name]
        xs, ys = _grid(problem.window, 801)
        i = np.unravel_index(np.argmin(f(xs, ys)), xs.shape)
        w = np.array([xs[i], ys[i]])
        for _ in range(10):
            h = 1e-4
            hessian = np.stack(
                [(_np_gradient(f, w + d) - _np_gradient(f, w - d)) / (2 * h) for d in np.eye(2) * h], axis=1
            )
            w = w - np.linalg.solve(hessian, _np_gradient(f, w))
        # Newton converges to where the numerical gradient (error ~1e-9) vanishes; the Hessian's smallest
        # eigenvalue is at least 18, so w is within ~1e-10 of the true minimum: 1e-8 is ample.
        np.testing.assert_allclose(w, problem.minima[0], rtol=0, atol=1e-8)


def test_the_plateau_has_a_kink_at_its_minimum():
    # r = |10 w| + 0.01 is a cone at the origin, so the plateau's minimum is not stationary: every direction
    # climbs at the rate 10 f'(0.01) = 10 (sin r - r cos r) / r^2 + 0.2 r ~ 0.0353 (r / 3 for small r).
    problem = PROBLEMS["plateau"]
    r = 0.01
    slope = 10 * ((np.sin(r) - r * np.cos(r)) / r**2 + 0.02 * r)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    for step in [1e-7, 1e-6]:
        for a in angles:
            rise = _np_plateau(step * np.cos(a), step * np.sin(a)) - _np_plateau(0.0, 0.0)
            # The rise is slope * step to first order; the curvature adds 50 f''(0.01) step^2 = 18 step^2, at
            # most 5e-4 of it here, and float64 rounding of f ~ 1 adds 2e-16, 6e-8 of the smaller rise.
            assert rise == pytest.approx(slope * step, rel=1e-2)
    with jax.enable_x64(True):  # At the origin itself, jax.grad gives the subgradient 0, not NaN.
        np.testing.assert_array_equal(jax.grad(problem.fn)(jnp.zeros(2, jnp.float64)), [0.0, 0.0])
        near = np.asarray(jax.grad(problem.fn)(jnp.asarray([1e-6, 0.0], jnp.float64)))
    r = 10 * 1e-6 + 0.01  # Just off the origin the gradient is the exact 10 f'(r), pointing away from it.
    np.testing.assert_allclose(near, [10 * ((np.sin(r) - r * np.cos(r)) / r**2 + 0.02 * r), 0.0], rtol=1e-9)
    assert near[0] == pytest.approx(slope, rel=2e-3)


# The race's defaults (2000 steps) on these surfaces. Every optimizer ends closer to the minimum, and lower,
# than it started; but only some arrive. These outcomes are what the notebook on the lecture shows, and they
# hold for neighbouring learning rates too (momentum at 0.1 and 0.3 on local_minimum, 0.03 to 1 on plateau).
ARRIVE = {
    "local_minimum": {"momentum", "adam"},  # The rest stop in the shallow well at (0.905, 0).
    "saddle_point": set(cli.OPTIMIZERS),
    "ecliptic_bowl": set(cli.OPTIMIZERS),
    "hills": set(),  # Every one stops in the local minimum at (0.04, 0) between the hills.
    "plateau": {"momentum", "adam"},  # The rest stop on the first ripple, |w| = 0.66.
}


@lilipads
def test_the_race_defaults_make_progress_and_the_known_ones_arrive(name):
    problem = PROBLEMS[name]
    start_distance = problem.distance_to_minimum(np.asarray(problem.start))
    laps = cli.race(problem, 2000, dict(problem.learning_rates))
    for lap in laps:
        assert np.isfinite(lap.losses).all(), lap.name
        assert lap.losses[-1] < lap.losses[0] / 2, lap.name
        assert lap.distance < 0.7 * start_distance, lap.name
    arrived = {lap.name for lap in laps if lap.steps_to_target is not None and lap.distance < 0.05}
    assert arrived == ARRIVE[name]
