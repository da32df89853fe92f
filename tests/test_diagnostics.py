"""adaptive_tx.diagnostics: the effective learning rate and ``track``, against float64 NumPy."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx.diagnostics import (
    QUANTILE_RESOLUTION,
    TrackState,
    TrackStats,
    effective_learning_rate,
    summarize,
    track,
)
from tests.helpers import REGISTRY, nested_params, registry

# The stats are float32 scalars computed from float32 leaves: a sum of ~10 terms rounds to a few ulps.
F32 = {"rtol": 2e-6, "atol": 0}
QUANTILES = {"effective_lr_p10": 0.1, "effective_lr_median": 0.5, "effective_lr_p90": 0.9}


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


def _numpy_stats(u, g, w):
    """The documented statistics, in float64 NumPy, from flat arrays of all coordinates."""
    u, g, w = (_flat(t) for t in (u, g, w))
    nonzero = g != 0
    ratio = np.abs(u[nonzero]) / np.abs(g[nonzero])
    return {
        "effective_lr_mean": ratio.mean(),
        "effective_lr_min": ratio.min(),
        "effective_lr_max": ratio.max(),
        "update_rms": np.sqrt(np.mean(u**2)),
        "grad_rms": np.sqrt(np.mean(g**2)),
        "update_to_param_ratio": np.linalg.norm(u) / np.linalg.norm(w),
        **{name: np.quantile(ratio, q, method="lower") for name, q in QUANTILES.items()},
        "update_to_grad_ratio": np.linalg.norm(u) / np.linalg.norm(g),
    }


def _assert_stats(stats, expected, **tolerance):
    """Every statistic against NumPy's: the quantiles within the histogram's resolution, the rest to ``tolerance``."""
    for name in TrackStats._fields:
        rtol = QUANTILE_RESOLUTION if name in QUANTILES else tolerance.get("rtol", F32["rtol"])
        np.testing.assert_allclose(getattr(stats, name), expected[name], rtol=rtol, atol=0, err_msg=name)


def _gradients(steps, shape=(3, 4), seed=0):
    """Random gradients with exact zeros in a few coordinates (a sparse feature that did not fire)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        g = rng.normal(size=shape)
        g[rng.random(shape) < 0.25] = 0.0
        out.append(g)
    return out


@pytest.mark.x64
def test_adagrads_effective_learning_rate_is_eta_over_root_of_the_sum():
    """The lecture's AdaGrad rate, eta / sqrt(s_t + eps), per coordinate, against float64 NumPy."""
    eta, eps, s0 = 0.3, 1e-3, 0.2
    with jax.enable_x64(True):
        tx = track(atx.adagrad(eta, eps=eps, initial_accumulator=s0))
        w = jnp.ones((3, 4), jnp.float64)
        state = tx.init(w)
        step = jax.jit(tx.update)
        s = np.full((3, 4), s0)
        for g in _gradients(20):
            u, state = step(jnp.asarray(g), state, w)
            s = s + g**2
            expected = np.where(g != 0, eta / np.sqrt(s + eps), 0.0)
            # float64 leaves: the per-coordinate ratio is computed in float64.
            np.testing.assert_allclose(effective_learning_rate(u, jnp.asarray(g)), expected, rtol=1e-14, atol=0)
            # The float32 summaries over the coordinates with g != 0.
            rate = expected[g != 0]
            np.testing.assert_allclose(state.stats.effective_lr_mean, rate.mean(), rtol=1e-7)
            np.testing.assert_allclose(state.stats.effective_lr_min, rate.min(), rtol=1e-7)
            np.testing.assert_allclose(state.stats.effective_lr_max, rate.max(), rtol=1e-7)
            for name, q in QUANTILES.items():  # Within the histogram's resolution, 1/32.
                exact = np.quantile(rate, q, method="lower")
                np.testing.assert_allclose(getattr(state.stats, name), exact, rtol=QUANTILE_RESOLUTION, err_msg=name)
            assert state.stats.effective_lr_mean.dtype == jnp.float32


def test_effective_learning_rate_of_gradient_descent_is_the_learning_rate():
    g = {"a": jnp.array([1.0, -2.0, 0.0]), "b": jnp.array([[4.0]], jnp.bfloat16)}
    tx = optax.sgd(0.25)
    u, _ = tx.update(g, tx.init(g))
    rates = effective_learning_rate(u, g)
    np.testing.assert_array_equal(rates["a"], [0.25, 0.25, 0.0])
    np.testing.assert_array_equal(rates["b"], [[0.25]])
    assert rates["b"].dtype == jnp.float32  # 16-bit leaves are measured in float32.


def test_complex_leaves_give_ratios_of_moduli():
    g = jnp.array([3 + 4j, 0j], jnp.complex64)
    u = jnp.array([-1j, 2.0], jnp.complex64)
    rates = effective_learning_rate(u, g)
    np.testing.assert_allclose(rates, [1 / 5, 0.0], rtol=1e-7)
    assert rates.dtype == jnp.float32


@registry
@pytest.mark.parametrize("jit", [False, True], ids=["op-by-op", "jit"])
def test_track_never_changes_the_updates(entry, jit):
    """Over every public transformation (a tracked one is tracked again): the same updates and inner state.

    Op by op they are bit for bit the same. Under jit XLA compiles the update together with the statistics
    that now read it, and may fuse (so round) its arithmetic differently: at most one float32 ulp, as when a
    plain step also returns ``optax.tree.norm(updates)`` (test below).
    """
    params = nested_params()
    plain, tracked = entry(), track(entry())
    plain_update = jax.jit(plain.update) if jit else plain.update
    tracked_update = jax.jit(tracked.update) if jit else tracked.update
    plain_state, tracked_state = plain.init(params), tracked.init(params)
    for t in range(3):
        g = jax.tree.map(lambda w, t=t: jnp.sin(w * (t + 1)) + w - 1, params)
        expected, plain_state = plain_update(g, plain_state, params)
        actual, tracked_state = tracked_update(g, tracked_state, params)
        if jit:
            for a, e in zip(
                jax.tree.leaves((actual, tracked_state.inner_state)),
                jax.tree.leaves((expected, plain_state)),
                strict=True,
            ):
                if e.dtype == jnp.bfloat16:  # NumPy's ulp check has no bfloat16: widen (exactly) to float32.
                    np.testing.assert_array_max_ulp(np.asarray(a, np.float32), np.asarray(e, np.float32), maxulp=1)
                elif jnp.issubdtype(e.dtype, jnp.floating):
                    np.testing.assert_array_max_ulp(np.asarray(a), np.asarray(e), maxulp=1)
                else:
                    np.testing.assert_array_equal(a, e)
        else:
            chex.assert_trees_all_equal(actual, expected)
            chex.assert_trees_all_equal(tracked_state.inner_state, plain_state)
    assert isinstance(tracked_state, TrackState)


def test_a_jitted_step_that_also_logs_the_norm_may_round_differently_without_track():
    """Why the jitted comparison above allows one ulp: XLA, not track, with a plain extra output."""
    entry = next(e for e in REGISTRY if e.name == "torch.nadam")
    params = nested_params()
    tx = entry()
    g = jax.tree.map(lambda w: jnp.sin(w) + w - 1, params)
    alone, _ = jax.jit(tx.update)(g, tx.init(params), params)
    (logged, _), _ = jax.jit(lambda g, s, p: (tx.update(g, s, p), optax.tree.norm(tx.update(g, s, p)[0])))(
        g, tx.init(params), params
    )
    for a, e in zip(jax.tree.leaves(logged), jax.tree.leaves(alone), strict=True):
        np.testing.assert_array_max_ulp(np.asarray(a), np.asarray(e), maxulp=1)


def test_every_statistic_against_numpy():
    """Momentum moves coordinates whose gradient is 0: they count in the RMS, not in the rate."""
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.array([0.5, -0.25])}
    tx = track(atx.momentum(0.1, beta=0.9))
    state = tx.init(params)
    step = jax.jit(tx.update)
    for seed in range(6):
        b0 = 1.0 if seed == 0 else 0.0  # From the second step on, b[0] moves on its momentum alone.
        g = {"w": jnp.asarray(_gradients(1, (3, 4), seed)[0], jnp.float32), "b": jnp.array([b0, 1.5 + seed])}
        u, state = step(g, state, params)
        expected = _numpy_stats(u, g, params)
        assert seed == 0 or (g["b"][0] == 0 and u["b"][0] != 0)
        _assert_stats(state.stats, expected)
        params = optax.apply_updates(params, u)


def test_edge_cases_are_documented_values():
    zero = {"w": jnp.zeros(3)}
    stats = summarize(zero, zero, zero)  # No gradient: no rate and no step.
    assert all(float(x) == 0.0 for x in stats)
    stats = summarize({"w": jnp.array([0.1, 0.0, 0.0])}, {"w": jnp.array([1.0, 0.0, 0.0])}, zero)
    assert float(stats.update_to_param_ratio) == np.inf  # A step away from w = 0.
    assert float(stats.effective_lr_min) == float(stats.effective_lr_max) == pytest.approx(0.1)
    stats = summarize({"w": jnp.ones(2)}, {"w": jnp.ones(2)})  # No params given.
    assert np.isnan(stats.update_to_param_ratio) and float(stats.update_rms) == 1.0


def test_stats_are_float32_scalars_whatever_the_params():
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
        params = nested_params(dtype)
        tx = track(atx.adam(0.1))
        _, state = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
        chex.assert_trees_all_equal_shapes_and_dtypes(state.stats, TrackStats(*[jnp.zeros((), jnp.float32)] * 10))
        # Adam's first step on a constant gradient is the learning rate, in every coordinate.
        np.testing.assert_allclose(state.stats.effective_lr_mean, 0.1, rtol=1e-2)  # bfloat16 step: 8 bits.


def _stats_after(tx, grads, params):
    state = tx.init(params)
    for g in grads:
        u, state = jax.jit(tx.update)(g, state, params)
    return u, state


def test_composes_with_chain_and_tree_get():
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    g = {"w": jnp.array([0.5, -1.0, 0.0])}
    tx = optax.chain(optax.clip_by_global_norm(10.0), track(atx.adagrad(0.5, eps=0.0)), optax.scale(2.0))
    u, state = _stats_after(tx, [g], params)
    stats = optax.tree_utils.tree_get(state, "stats")
    # Tracked inside the chain: AdaGrad's own first step, eta / |g| per coordinate, before the scale by 2.
    np.testing.assert_allclose(stats.effective_lr_mean, 0.5 / 0.5 / 2 + 0.5 / 1.0 / 2, rtol=1e-6)
    np.testing.assert_allclose(u["w"], [-1.0, 1.0, 0.0], rtol=1e-6)


def test_composes_with_inject_hyperparams_both_ways():
    params = {"w": jnp.array([1.0, -2.0])}
    g = {"w": jnp.array([2.0, 4.0])}
    outside = track(optax.inject_hyperparams(atx.adagrad)(learning_rate=0.5, eps=0.0))
    inside = optax.inject_hyperparams(lambda learning_rate: track(atx.adagrad(learning_rate, eps=0.0)))(
        learning_rate=0.5
    )
    for tx, stats_of in ((outside, lambda s: s.stats), (inside, lambda s: s.inner_state.stats)):
        state = tx.init(params)
        _, state = tx.update(g, state, params)
        np.testing.assert_allclose(stats_of(state).effective_lr_min, 0.5 / 4.0, rtol=1e-6)
        np.testing.assert_allclose(stats_of(state).effective_lr_max, 0.5 / 2.0, rtol=1e-6)


def test_composes_with_multisteps():
    """Inside MultiSteps the stats describe the one real step, on the averaged gradient."""
    params = {"w": jnp.array([1.0, 2.0])}
    tx = optax.MultiSteps(track(optax.sgd(0.1)), every_k_schedule=2)
    grads = [{"w": jnp.array([1.0, 3.0])}, {"w": jnp.array([3.0, 5.0])}]
    with jax.numpy_dtype_promotion("standard"):  # MultiSteps divides by its int32 count.
        u, state = _stats_after(tx, grads, params)
    stats = state.inner_opt_state.stats
    np.testing.assert_allclose(u["w"], [-0.2, -0.4], rtol=1e-6)
    np.testing.assert_allclose(stats.grad_rms, np.sqrt((2.0**2 + 4.0**2) / 2), rtol=1e-6)
    np.testing.assert_allclose(stats.effective_lr_mean, 0.1, rtol=1e-6)


def test_composes_with_apply_if_finite():
    """A non-finite gradient is dropped by apply_if_finite: the stats keep the last good step's values."""
    params = {"w": jnp.array([1.0, 2.0])}
    tx = optax.apply_if_finite(track(atx.adam(0.1)), max_consecutive_errors=3)
    good, bad = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([jnp.nan, 1.0])}
    _, state = _stats_after(tx, [good], params)
    u, after = _stats_after(tx, [good, bad], params)
    np.testing.assert_array_equal(u["w"], [0.0, 0.0])
    chex.assert_trees_all_equal(after.inner_state.stats, state.inner_state.stats)
    np.testing.assert_allclose(state.inner_state.stats.effective_lr_mean, (0.1 / 1.0 + 0.1 / 2.0) / 2, rtol=1e-5)


def test_keeps_extra_args_and_plain_transformations_stay_plain():
    def init(params):
        return optax.EmptyState()

    def update(updates, state, params=None, *, scale):
        return jax.tree.map(lambda u: scale * u, updates), state

    extra = track(optax.GradientTransformationExtraArgs(init, update))
    assert isinstance(extra, optax.GradientTransformationExtraArgs)
    g = jnp.array([1.0, 2.0])
    u, state = extra.update(g, extra.init(g), scale=3.0)
    np.testing.assert_array_equal(u, [3.0, 6.0])
    np.testing.assert_allclose(state.stats.effective_lr_mean, 3.0)
    plain = track(optax.GradientTransformation(*optax.scale(2.0)))
    assert not isinstance(plain, optax.GradientTransformationExtraArgs)
    u, _ = plain.update(g, plain.init(g))
    np.testing.assert_array_equal(u, [2.0, 4.0])


def test_bad_input_names_what_is_wrong():
    with pytest.raises(TypeError, match="GradientTransformation"):
        track(atx.adam)  # The factory, not a transformation.
    with pytest.raises(ValueError, match=r"\['b'\].*\(2,\).*\(3,\)"):
        effective_learning_rate({"a": jnp.ones(1), "b": jnp.ones(2)}, {"a": jnp.ones(1), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="same structure"):
        effective_learning_rate({"a": jnp.ones(1)}, [jnp.ones(1)])


def test_jit_and_donation_keep_the_state_types():
    """The state of step t has the types of step t + 1 (a scan carry), so training loops can scan."""
    params = nested_params()
    tx = track(atx.rmsprop(0.01))

    def body(carry, _):
        w, s = carry
        u, s = tx.update(jax.tree.map(lambda x: x - 1, w), s, w)
        return (optax.apply_updates(w, u), s), s.stats.effective_lr_mean

    (_, state), rates = jax.lax.scan(body, (params, tx.init(params)), length=5)
    assert rates.shape == (5,) and state.stats.grad_rms > 0
    # RMSprop's first step on g: eta / sqrt((1 - decay) g^2), so mean rate > eta; it then decreases.
    assert rates[0] > 0.01 and np.all(np.diff(np.asarray(rates)) < 0)


def test_registry_holds_tracked_entries():
    names = {e.name for e in REGISTRY}
    assert {"track-adam", "track-scale_by_adagrad"} <= names
