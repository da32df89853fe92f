"""The precision policy on values: mixed precision keeps tiny steps, 16-bit params get float32 squared
accumulators, and the results track float64 oracles (the policy is stated in adaptive_tx/_leafwise.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx


@pytest.mark.parametrize("lr", [2e-8, 1e-7])
def test_float16_gradients_on_float32_params_step_by_the_learning_rate(lr):
    # Adam's first step is lr * sign(g). With float16 gradients the direction used to come back in float16,
    # so optax.scale(-lr) ran in float16: 1e-7 rounded to 1.19e-7, 2e-8 to 0. Now it is float32.
    params = jnp.array([1.0, -2.0, 3.0], jnp.float32)
    grads = jnp.array([0.5, -1.5, 2.0], jnp.float16)
    tx = atx.adam(lr)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    assert updates.dtype == jnp.float32
    # float32 holds lr to 6e-8 relative; the bias-corrected direction is sign(g) / (1 + eps / |g|).
    np.testing.assert_allclose(np.asarray(updates), -lr * np.sign(np.asarray(grads, np.float64)), rtol=1e-3)
    moved = optax.apply_updates(jnp.full(3, 1e-6, jnp.float32), updates)
    assert np.all(np.asarray(moved) != 1e-6)  # The step reaches the params: not rounded away.


def test_adagrad_on_float16_params_matches_its_oracle_for_1000_steps():
    # g = 10 on float16 params: s_t = 100 t passes float16's maximum (65504) at t = 656, after which a
    # float16 sum is inf and every step a finite zero. The default float32 sum keeps s_t exact.
    lr = 0.01
    params = jnp.ones(4, jnp.float16)
    grads = jnp.full(4, 10.0, jnp.float16)
    tx = atx.adagrad(lr)
    state = tx.init(params)
    update = jax.jit(tx.update)
    s = 0.0
    for _ in range(1000):
        updates, state = update(grads, state, params)
        s += 10.0**2  # The float64 oracle of the lecture's equation.
        expected = -lr * 10.0 / np.sqrt(s + 1e-8)
        # float16 params give float16 updates (Optax's convention): the float32 direction is rounded to
        # float16 once (2^-11 relative) and the learning rate applied in float16 once more: 2^-10 in all. A
        # float16 sum would be off by far more from step 656 on (inf: steps of 0).
        np.testing.assert_allclose(np.asarray(updates, np.float64), expected, rtol=2**-10)
        assert updates.dtype == jnp.float16
    assert state[0].sum_of_squares.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(state[0].sum_of_squares), 1e5)


@pytest.mark.parametrize(
    ("state_dtypes", "bound"),
    [
        # The default: float32 second moment, bfloat16 first moment (the params' dtype). Each step rounds the
        # first moment by up to 2^-9 relative and the leaky average carries those roundings along (up to
        # 1 / (1 - b1) = 10 of them): measured 0.6% per step on average, 1.2% at the worst step.
        ({}, {"mean": 0.01, "worst": 0.02}),
        # Both moments in float32: float32 rounding only (measured 3e-6).
        ({"mu_dtype": jnp.float32}, {"mean": 1e-4, "worst": 1e-4}),
    ],
    ids=["default", "float32-mu"],
)
def test_adam_on_bfloat16_params_tracks_its_float64_oracle(state_dtypes, bound):
    errors = _bfloat16_adam_errors(state_dtypes)
    assert np.mean(errors) < bound["mean"] and np.max(errors) < bound["worst"]


def test_adam_with_a_bfloat16_second_moment_does_not_track_its_oracle():
    # The negative control: in bfloat16, 0.999 * s rounds back to s, so the second moment cannot decay
    # after the gradients shrink (measured: 5.3% off at the worst step, steps too small).
    assert np.max(_bfloat16_adam_errors({"nu_dtype": jnp.bfloat16})) > 0.03


def _bfloat16_adam_errors(state_dtypes):
    """Per-step normwise relative error of 200 Adam steps on bfloat16 params against a float64 oracle."""
    rng = np.random.default_rng(0)
    g64 = rng.uniform(0.5, 1.5, size=(200, 8)) * 10.0 ** rng.integers(-2, 1, size=8)  # Scales 0.01 to 1.
    g64[100:] /= 10.0  # Smaller gradients after step 100: the second moment must decay to follow them.
    grads = jnp.asarray(g64, jnp.bfloat16)
    g64 = np.asarray(grads, np.float64)  # The oracle sees exactly the rounded gradients.
    tx = atx.adam(1e-3, **state_dtypes)
    state = tx.init(jnp.zeros(8, jnp.bfloat16))
    update = jax.jit(tx.update)
    v = s = np.zeros(8)
    errors = []
    for t in range(1, 201):
        updates, state = update(grads[t - 1], state)
        v = 0.9 * v + 0.1 * g64[t - 1]
        s = 0.999 * s + 0.001 * g64[t - 1] ** 2
        expected = -1e-3 * (v / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.999**t)) + 1e-8)
        errors.append(np.max(np.abs(np.asarray(updates, np.float64) - expected)) / np.max(np.abs(expected)))
    return errors


def test_explicit_bfloat16_second_moment_is_honoured_and_is_what_stalls():
    # The policy's default is a choice, not a constraint: nu_dtype=jnp.bfloat16 stores 16 bits (and shows why
    # the default is float32: the second moment of a gradient that dropped from 1 to 0.01 does not decay).
    params = jnp.zeros(2, jnp.bfloat16)
    low, default = atx.scale_by_adam(nu_dtype=jnp.bfloat16), atx.scale_by_adam()
    low_state, state = low.init(params), default.init(params)
    for t in range(400):
        g = jnp.full(2, 1.0 if t < 100 else 0.01, jnp.bfloat16)
        _, low_state = low.update(g, low_state)
        _, state = default.update(g, state)
    assert low_state.nu.dtype == jnp.bfloat16 and state.nu.dtype == jnp.float32
    exact = 0.001 * sum(0.999 ** (399 - k) * (1.0 if k < 100 else 1e-4) for k in range(400))
    assert abs(float(state.nu[0]) - exact) < 1e-4 * exact  # float32 rounding over 400 steps.
    assert float(low_state.nu[0]) > 1.2 * exact  # Stuck well above the exact value (measured: 1.38x).
