"""Published and closed-form numbers: the lecture's claims, measured."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx.problems import PROBLEMS
from tests.helpers import run_steps


def _endpoint(tx, start, loss, steps):
    grad = jax.grad(loss)
    trajectory, _ = run_steps(tx, jnp.asarray(start), lambda w, t: grad(w), steps)
    return np.asarray(trajectory[-1])


@pytest.mark.parametrize(
    ("tx", "expected"),
    [
        # Dive into Deep Learning, sections 12.6-12.8, `train_2d` on f = 0.1 x1^2 + 2 x2^2 from (-5, -2),
        # 20 steps, eps = 1e-6 inside the root; the book prints these endpoints to 6 decimals.
        pytest.param(lambda: atx.adagrad(0.4, eps=1e-6), (-2.382563, -0.158591), id="adagrad-0.4"),
        pytest.param(lambda: atx.adagrad(2.0, eps=1e-6), (-0.002295, 0.0), id="adagrad-2"),
        pytest.param(lambda: atx.rmsprop(0.4, decay=0.9, eps=1e-6), (-0.010599, 0.0), id="rmsprop-0.4"),
        # d2l's momentum is the heavy ball: v = beta v + g.
        pytest.param(lambda: atx.momentum(0.6, beta=0.5, dampening=0.0), (0.007188, 0.002553), id="momentum"),
    ],
)
def test_d2l_printed_endpoints(tx, expected):
    with jax.enable_x64(True):  # d2l computes in Python floats (float64).
        end = _endpoint(tx(), jnp.array([-5.0, -2.0], jnp.float64), PROBLEMS["quadratic"].fn, 20)
    # The book rounds to 6 decimals: half a unit in the last place.
    np.testing.assert_allclose(end, expected, rtol=0, atol=5e-7 + 1e-12)


def _steps_on_constant_gradient(tx, steps, g=1.0):
    with jax.enable_x64(True):
        trajectory, _ = run_steps(tx, jnp.zeros(1, jnp.float64), lambda w, t: jnp.full_like(w, g), steps)
        w = np.concatenate([[0.0], np.asarray(trajectory)[:, 0]])
    return -np.diff(w)  # Step sizes (positive = downhill).


def test_adam_moves_exactly_lr_per_step_from_the_first_step():
    # Adam paper section 3: bias correction makes m^/sqrt(v^) = 1 on a constant gradient, so each step is
    # lr / (1 + eps) = lr (1 - 1e-8).
    steps = _steps_on_constant_gradient(atx.adam(0.01), 1000)
    np.testing.assert_allclose(steps, 0.01, rtol=2e-8)


def test_rmsprop_without_bias_correction_overshoots_first():
    # No bias correction: s_1 = (1 - beta) g^2, so the first step is lr / sqrt(1 - beta) = 3.16 lr.
    steps = _steps_on_constant_gradient(atx.rmsprop(0.01, decay=0.9), 50)
    np.testing.assert_allclose(steps[0], 0.01 / np.sqrt(0.1), rtol=1e-7)
    np.testing.assert_allclose(steps[-1], 0.01, rtol=1e-2)  # beta^50 = 5e-3 of the start is left.


def test_adagrad_step_decays_like_one_over_root_t():
    # "The more you update, the less you update": on a constant unit gradient s_t = t, step_t = lr/sqrt(t).
    steps = _steps_on_constant_gradient(atx.adagrad(0.01, eps=0.0), 10_000)
    t = np.arange(1, 10_001)
    # Steps are read as differences of w ~ 2, each off by up to an ulp of 2 (4.4e-16): ~4e-12 relative to
    # the last steps of 1e-4, hence 1e-10.
    np.testing.assert_allclose(steps, 0.01 / np.sqrt(t), rtol=1e-10)
    # eta * sum_t t^(-1/2) ~ 2 eta sqrt(T) - 1.46 eta: AdaGrad covers ~1.985 in 1e4 steps at lr 0.01 (Adam: 100).
    np.testing.assert_allclose(steps.sum(), 0.01 * np.sum(1 / np.sqrt(t)), rtol=1e-10)
    np.testing.assert_allclose(steps.sum(), 1.985, atol=1e-3)


def test_adadelta_first_step_is_root_eps_over_one_minus_rho():
    # Zeiler's eps acts as the learning rate: the first step is sqrt(eps / ((1 - rho) g^2 + eps)) g
    # ~ sqrt(eps / (1 - rho)) = 3.16e-3 for eps 1e-6, rho 0.9, whatever the gradient's scale.
    for g in (1.0, 100.0):
        steps = _steps_on_constant_gradient(atx.adadelta(), 1, g=g)
        np.testing.assert_allclose(steps[0], np.sqrt(1e-6 / (0.1 * g**2 + 1e-6)) * g, rtol=1e-12)
        np.testing.assert_allclose(steps[0], np.sqrt(1e-6 / 0.1), rtol=1e-4)


def test_bias_corrected_momentum_block_matches_oracle():
    # optax.chain(scale_by_momentum(beta), bias_correction(beta)): v_t / (1 - beta^t), a float64 oracle.
    beta = 0.8
    grads = np.random.default_rng(1).normal(size=(30, 4))
    tx = optax.chain(atx.scale_by_momentum(beta=beta), atx.bias_correction(beta))
    with jax.enable_x64(True):
        state = tx.init(jnp.zeros(4, jnp.float64))
        update = jax.jit(tx.update)
        v = np.zeros(4)
        for t, g in enumerate(grads, start=1):
            out, state = update(jnp.asarray(g), state)
            v = beta * v + (1 - beta) * g
            np.testing.assert_allclose(np.asarray(out), v / (1 - beta**t), rtol=1e-12)
    assert int(state[1].count) == 30


@pytest.mark.parametrize(
    ("tx", "expected"),
    [
        # From zero moments, one step at t -> infinity is uncorrected: (1 - b1) g / sqrt((1 - b2) g^2).
        (atx.scale_by_adam(), 0.1 / np.sqrt(0.001)),
        (atx.bias_correction(0.999), 1.0),  # 1 - 0.999^t = 1: no correction left.
    ],
    ids=["scale_by_adam", "bias_correction"],
)
def test_count_saturates_at_int32_max(tx, expected):
    g = jnp.ones(3)
    state = tx.init(g)
    assert state.count.dtype == jnp.int32
    top = jnp.iinfo(jnp.int32).max
    state = state._replace(count=jnp.asarray(top - 1, jnp.int32))
    update = jax.jit(tx.update)
    updates, state = update(g, state)
    # float32 1 - 0.999 = 9.99987e-4 is off by 1.3e-5 relative (three digits cancel), 6.4e-6 after the root.
    np.testing.assert_allclose(updates, expected, rtol=2e-5)
    for _ in range(3):
        assert int(state.count) == top  # Saturates instead of wrapping to a negative step.
        updates, state = update(g, state)
        assert np.all(np.isfinite(updates))
