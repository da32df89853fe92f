"""Against the real Optax: where our defaults coincide with Optax's, the numbers do too; where they differ,
the settings docs/defaults.md names ("Against Optax") close the gap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import grad, max_relative_error, nested_params, run_steps

PAIRS = [
    ("adam", lambda: atx.adam(0.05), lambda: optax.adam(0.05)),
    ("adam-eps_root", lambda: atx.adam(0.05, b1=0.8, eps_root=1e-3), lambda: optax.adam(0.05, b1=0.8, eps_root=1e-3)),
    ("rmsprop", lambda: atx.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    (
        "rmsprop-initial_scale",
        lambda: atx.rmsprop(0.01, initial_scale=1.0),
        lambda: optax.rmsprop(0.01, initial_scale=1.0),
    ),
    ("adadelta", lambda: atx.adadelta(), lambda: optax.adadelta(1.0)),
    ("heavy-ball", lambda: atx.momentum(0.05, dampening=0.0), lambda: optax.sgd(0.05, momentum=0.9)),
    (
        "heavy-ball-nesterov",
        lambda: atx.momentum(0.05, dampening=0.0, nesterov=True),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    ("adagrad-optax-defaults", lambda: atx.adagrad(0.1, eps=1e-7, initial_accumulator=0.1), lambda: optax.adagrad(0.1)),
    # Knobs on the blocks.
    (
        "rms-centered-eps-outside",
        lambda: optax.chain(atx.scale_by_rms(decay=0.8, eps=0.1, centered=True, eps_in_sqrt=False), optax.scale(-0.01)),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=0.1, centered=True, eps_in_sqrt=False),
    ),
    (
        "rms-centered",
        lambda: optax.chain(atx.scale_by_rms(decay=0.8, eps=0.1, centered=True), optax.scale(-0.01)),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=0.1, centered=True),
    ),
    (
        "nadam-psi-inf",
        lambda: optax.chain(
            atx.scale_by_nadam(b1=0.8, b2=0.9, eps=0.1, momentum_decay=float("inf")), optax.scale(-0.05)
        ),
        lambda: optax.nadam(0.05, b1=0.8, b2=0.9, eps=0.1),
    ),
    # The optimizers' own knobs, against Optax's same-named ones.
    (
        "adam-nesterov",
        lambda: atx.adam(0.05, b1=0.8, b2=0.9, eps=0.1, nesterov=True),
        lambda: optax.adam(0.05, b1=0.8, b2=0.9, eps=0.1, nesterov=True),
    ),
    (
        "adam-amsgrad-corrected",
        lambda: atx.adam(0.05, b1=0.8, b2=0.9, eps=0.1, amsgrad="corrected"),
        lambda: optax.amsgrad(0.05, b1=0.8, b2=0.9, eps=0.1),
    ),
    (
        "rmsprop-centered-momentum-nesterov",
        lambda: atx.rmsprop(0.01, decay=0.8, eps=0.1, centered=True, momentum=0.7, nesterov=True),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=0.1, centered=True, momentum=0.7, nesterov=True),
    ),
    (
        "rmsprop-momentum-schedule",
        lambda: atx.rmsprop(optax.linear_schedule(0.02, 0.002, 20), momentum=0.9, eps_in_sqrt=False),
        lambda: optax.rmsprop(optax.linear_schedule(0.02, 0.002, 20), momentum=0.9, eps_in_sqrt=False),
    ),
    (
        "amsgrad-corrected",
        lambda: optax.chain(atx.scale_by_adam(b1=0.8, b2=0.9, eps=0.1, amsgrad="corrected"), optax.scale(-0.05)),
        lambda: optax.amsgrad(0.05, b1=0.8, b2=0.9, eps=0.1),
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_matches_optax(ours, theirs):
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        actual, _ = run_steps(ours(), params, grad, 30)
        with jax.numpy_dtype_promotion("standard"):  # optax.adam computes decay**count as float ** int32.
            expected, _ = run_steps(theirs(), params, grad, 30)
    # The same equations in float64, in a different operation order: ~1e-15 per step.
    assert max_relative_error(actual[-1], jax.tree.map(np.asarray, expected[-1])) < 1e-12


def test_lecture_momentum_first_step_is_one_minus_beta_times_optax_sgd():
    g = jnp.array([1.0, -2.0])
    ours, theirs = atx.momentum(0.1), optax.sgd(0.1, momentum=0.9)
    u_ours, _ = ours.update(g, ours.init(g))
    u_theirs, _ = theirs.update(g, theirs.init(g))
    np.testing.assert_allclose(u_ours, (1 - 0.9) * u_theirs, rtol=1e-6)


def test_adadelta_with_default_learning_rate_descends():
    # optax.adadelta() (learning_rate=None) climbs from 14.0 to 19.9 here; ours descends.
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    w = jnp.array([1.0, 2.0, 3.0])
    trajectory, _ = run_steps(atx.adadelta(), w, lambda x, t: jax.grad(f)(x), 100)
    assert float(f(trajectory[-1])) < 0.9 * float(f(w))


# ----------------------------------------------------------------------------- complex params

COMPLEX_PAIRS = [
    ("adam", lambda: atx.adam(0.05), lambda: optax.adam(0.05)),
    ("rmsprop", lambda: atx.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
]
complex_pairs = pytest.mark.parametrize(
    ("ours", "theirs"), [p[1:] for p in COMPLEX_PAIRS], ids=[p[0] for p in COMPLEX_PAIRS]
)


def _complex_params():
    """nested_params with imaginary parts of their own: w (1 + 0.6i) + 0.7i flip(w) - 0.2i, in complex128."""

    def leaf(w):
        w = np.asarray(w, np.float64)
        return w * (1 + 0.6j) + 0.7j * np.flip(w) - 0.2j

    return jax.tree.map(leaf, nested_params())


def _complex_grad(params, t):
    # Complex in every coordinate, non-linear in w, and new at every step.
    return jax.tree.map(lambda w: 2 * w - (1 - 0.5j) + jnp.sin(w) + jnp.asarray(t, w.dtype) / 7, params)


def _complex_runs(ours, theirs, dtype):
    """30-step trajectories of ours and Optax's on the same params of ``dtype``, as complex128 NumPy."""
    params = jax.tree.map(lambda w: jnp.asarray(w, dtype), _complex_params())
    actual, state = run_steps(ours(), params, _complex_grad, 30)
    with jax.numpy_dtype_promotion("standard"):  # Optax's own code.
        expected, _ = run_steps(theirs(), params, _complex_grad, 30)
    assert {x.dtype for x in jax.tree.leaves(actual[-1])} == {jnp.dtype(dtype)}
    assert all(jnp.isrealobj(x) for x in jax.tree.leaves(optax.tree_utils.tree_get(state, "nu")))  # |g|^2.
    as_numpy = lambda trajectory: [jax.tree.map(lambda x: np.asarray(x, np.complex128), p) for p in trajectory]  # noqa: E731
    return as_numpy(actual), as_numpy(expected)


def _max_trajectory_error(actual, expected):
    """max over steps and leaves of max|a - e| / max|e|, in complex128 (max_relative_error is for reals)."""
    return max(
        float(np.max(np.abs(a - e)) / np.max(np.abs(e)))
        for step_a, step_e in zip(actual, expected, strict=True)
        for a, e in zip(jax.tree.leaves(step_a), jax.tree.leaves(step_e), strict=True)
    )


@complex_pairs
def test_complex128_matches_optax(ours, theirs):
    with jax.enable_x64(True):
        actual, expected = _complex_runs(ours, theirs, jnp.complex128)
    # The same equations in complex128 in a different operation order: measured 2.4e-16 (adam) and 1.4e-16
    # (rmsprop) over the 30 steps, as for real float64 params (test_matches_optax).
    assert _max_trajectory_error(actual, expected) < 1e-12


# complex64 against Optax's complex64, over the 30 steps. RMSprop has no bias correction: the two differ by
# float32 rounding in a different operation order, a few ulps (6e-8) a step (measured 2.1e-7). Adam: Optax
# weighs the new |g|^2 by 1 - 0.999 taken in float64, but divides by 1 - 0.999^t taken from 0.999 rounded to
# float32 (1.3e-8 high), which makes that divisor 1.3e-5 small relative; ours takes both from the same
# float32 decay, so the rounding cancels. Through the square root Optax's steps are 6.5e-6 short relative;
# here the 30 steps' total length is at most 7.2 times the smallest size of their leaf, so the params are at
# most 4.7e-5 apart relative (measured 1.5e-5). The second assertion pins that difference on Optax's
# rounding: against Optax's own complex128 run from the same starting point, ours is within 30 steps of a
# few float32 ulps (measured 1.7e-6 for adam, 3.1e-7 for rmsprop), where Optax's complex64 run is 1.6e-5
# away for adam.
COMPLEX64_RTOL = {"adam": 5e-5, "rmsprop": 2e-6}


@pytest.mark.parametrize(("name", "ours", "theirs"), COMPLEX_PAIRS, ids=[p[0] for p in COMPLEX_PAIRS])
def test_complex64_matches_optax(name, ours, theirs):
    actual, expected = _complex_runs(ours, theirs, jnp.complex64)
    assert _max_trajectory_error(actual, expected) < COMPLEX64_RTOL[name]
    with jax.enable_x64(True):
        start = jax.tree.map(lambda w: jnp.asarray(jnp.asarray(w, jnp.complex64), jnp.complex128), _complex_params())
        with jax.numpy_dtype_promotion("standard"):
            reference, _ = run_steps(theirs(), start, _complex_grad, 30)
    reference = [jax.tree.map(lambda x: np.asarray(x, np.complex128), p) for p in reference]
    assert _max_trajectory_error(actual, reference) < 5e-6
