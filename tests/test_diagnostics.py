"""adaptive_tx.diagnostics: the effective learning rate and ``track``, against float64 NumPy."""

import math
import re
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx import diagnostics
from adaptive_tx.diagnostics import (
    QUANTILE_RESOLUTION,
    TrackState,
    TrackStats,
    effective_learning_rate,
    scalars,
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
    for t in range(2):  # The second step starts from the first's state: the inner state is carried alike.
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
    assert {"track-adam", "track-scale_by_adagrad-per_leaf-every2-sample3"} <= names


# ----------------------------------------------------------------------------- robust statistics


def _mlp_step(seed=0, steps=3):
    """A random 8-16-4 tanh MLP trained by Adam for a few steps: its last updates, gradients and params."""
    rng = np.random.default_rng(seed)
    params = {
        "hidden": {"w": jnp.asarray(rng.normal(size=(8, 16)) / 3, jnp.float32), "b": jnp.zeros(16)},
        "out": {"w": jnp.asarray(rng.normal(size=(16, 4)) / 4, jnp.float32), "b": jnp.zeros(4)},
    }
    x, y = jnp.asarray(rng.normal(size=(32, 8)), jnp.float32), jnp.asarray(rng.normal(size=(32, 4)), jnp.float32)

    def loss(p):
        hidden = jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"][None])
        return jnp.mean((hidden @ p["out"]["w"] + p["out"]["b"][None] - y) ** 2)

    tx = atx.adam(1e-2)
    state = tx.init(params)
    for _ in range(steps):
        g = jax.grad(loss)(params)
        u, state = tx.update(g, state, params)
        params_before, params = params, optax.apply_updates(params, u)
    return u, g, params_before


def test_quantiles_and_norm_ratio_of_a_random_mlp_against_numpy():
    """The whole model's statistics and each layer's, from one jitted summarize, against float64 NumPy."""
    u, g, w = _mlp_step()
    whole = jax.jit(summarize)(u, g, w)
    _assert_stats(whole, _numpy_stats(u, g, w))
    np.testing.assert_allclose(whole.update_to_grad_ratio, np.linalg.norm(_flat(u)) / np.linalg.norm(_flat(g)), 1e-6)
    per_leaf = jax.jit(summarize, static_argnames="per_leaf")(u, g, w, per_leaf=True)
    assert set(per_leaf.effective_lr_median) == {"hidden/b", "hidden/w", "out/b", "out/w"}
    for path in per_leaf.effective_lr_median:
        layer, leaf = path.split("/")
        expected = _numpy_stats(u[layer][leaf], g[layer][leaf], w[layer][leaf])
        _assert_stats(TrackStats._make(field[path] for field in per_leaf), expected)


def test_quantiles_resolve_every_magnitude_to_within_one_32nd():
    """One coordinate at a time (vmapped), log-uniform over 16 decades: its median is that ratio within 1/32."""
    rng = np.random.default_rng(1)
    g = rng.uniform(0.5, 2.0, size=(400, 1)).astype(np.float32)
    u = (10.0 ** rng.uniform(-8, 8, size=(400, 1)) * g).astype(np.float32)
    got = np.asarray(jax.vmap(lambda u, g: summarize(u, g).effective_lr_median)(u, g))
    exact = (u.astype(np.float64) / g)[:, 0]
    np.testing.assert_allclose(got, exact, rtol=QUANTILE_RESOLUTION)
    assert np.max(np.abs(got / exact - 1)) > QUANTILE_RESOLUTION / 4  # A histogram, not the exact values.


def test_python_numbers_an_empty_tree_and_the_sampling_under_a_mesh():
    """Python floats are leaves like any; no leaves at all give the documented zeros (NaN without params);
    and the sample a mesh takes in place (masking, not slicing: a slice would gather a split leaf) is the same
    histogram as the flat slice's."""
    stats = summarize({"a": 0.5, "b": [1.0]}, {"a": 1.0, "b": [-4.0]}, per_leaf=True)
    assert stats.effective_lr_mean == {"a": 0.5, "b/0": 0.25}
    assert all(float(x) == 0.0 for x in summarize({}, {}, {}))
    assert np.isnan(summarize({}, {}).update_to_param_ratio)
    g = jnp.asarray(np.random.default_rng(4).normal(size=(30, 7)), jnp.float32)
    u = g**3
    sliced = diagnostics._histogram(u, g, 50)  # Every 5th coordinate of 210.
    with mock.patch.object(diagnostics, "_under_mesh", return_value=True):
        masked = diagnostics._histogram(u, g, 50)
    np.testing.assert_array_equal(masked, sliced)
    assert float(jnp.sum(sliced)) == 5 * 42


def test_zero_steps_on_moving_gradients_are_zero_quantiles():
    """Coordinates the optimizer did not move (u = 0, g != 0) have rate 0: the low quantile sees them."""
    g = jnp.arange(1.0, 11.0)
    u = jnp.where(jnp.arange(10) < 3, 0.0, 0.25 * g)  # 30% frozen: p10 = 0, median = 0.25.
    stats = summarize(u, g)
    assert float(stats.effective_lr_p10) == 0.0
    np.testing.assert_allclose([stats.effective_lr_median, stats.effective_lr_p90], 0.25, rtol=QUANTILE_RESOLUTION)


def test_a_large_leaf_is_sampled_and_sample_none_reads_every_coordinate():
    """300,000 coordinates: by default every 5th (odd stride) is binned; the quantiles stay within the ranks
    of a sample that size (q +- 1%) and the histogram's resolution. ``sample=None`` bins all of them."""
    rng = np.random.default_rng(2)
    g = jnp.asarray(rng.normal(size=(600, 500)), jnp.float32)
    u = jnp.asarray(np.exp(rng.normal(size=(600, 500))) * 1e-3, jnp.float32) * g
    ratio = np.sort(np.abs(np.asarray(u, np.float64)) / np.abs(np.asarray(g, np.float64)), axis=None)
    sampled, exact = summarize(u, g), summarize(u, g, sample=None)
    for name, q in QUANTILES.items():
        low, high = np.quantile(ratio, [q - 0.01, q + 0.01], method="lower")
        value = float(getattr(sampled, name))
        assert low * (1 - QUANTILE_RESOLUTION) <= value <= high * (1 + QUANTILE_RESOLUTION), name
        np.testing.assert_allclose(
            getattr(exact, name), np.quantile(ratio, q, method="lower"), rtol=QUANTILE_RESOLUTION
        )
    assert float(sampled.effective_lr_mean) == pytest.approx(ratio.mean(), rel=1e-5)  # The mean reads them all.


def test_every_k_measures_on_steps_0_k_2k_and_carries_the_last_values():
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    tx = track(atx.adagrad(0.3, eps=1e-3), every=3)
    state = tx.init(params)
    step = jax.jit(tx.update)
    for t, g in enumerate(_gradients(8, (6,), seed=3)):
        g = {"w": jnp.asarray(g, jnp.float32)}
        before = state.stats
        u, state = step(g, state, params)
        if t % 3 == 0:  # This step's statistics (to an ulp: compiled with the step, not alone).
            chex.assert_trees_all_close(state.stats, summarize(u, g, params), rtol=1e-6, atol=0)
            assert float(state.stats.effective_lr_mean) != float(before.effective_lr_mean)
        else:
            chex.assert_trees_all_equal(state.stats, before)
        assert int(state.count) == t + 1


def test_scalars_names_every_statistic_for_any_logger():
    params = {"dense": {"w": jnp.ones((2, 3))}, "bias": jnp.ones(3)}
    g = {"dense": {"w": jnp.full((2, 3), 2.0)}, "bias": jnp.full(3, -4.0)}
    whole, per_leaf = track(optax.sgd(0.5)), track(optax.sgd(0.5), per_leaf=True)
    _, state = whole.update(g, whole.init(params), params)
    logged = scalars(state.stats, prefix="train/opt")
    assert list(logged) == [f"train/opt/{f}" for f in TrackStats._fields]
    assert all(type(v) is float for v in logged.values())
    assert logged["train/opt/effective_lr_mean"] == 0.5
    np.testing.assert_allclose(logged["train/opt/update_to_grad_ratio"], 0.5, rtol=1e-7)
    _, state = per_leaf.update(g, per_leaf.init(params), params)
    logged = scalars(state)  # The TrackState itself, no prefix.
    assert len(logged) == 2 * len(TrackStats._fields)
    np.testing.assert_allclose(logged["update_to_param_ratio/dense/w"], 1.0, rtol=1e-7)  # 0.5 * 2 / 1.
    np.testing.assert_allclose(logged["update_to_param_ratio/bias"], 2.0, rtol=1e-7)  # 0.5 * 4 / 1.
    with pytest.raises(TypeError, match="stats must be a TrackStats"):
        scalars({"effective_lr_mean": 1.0})
    with pytest.raises(TypeError, match="prefix must be a str"):
        scalars(state, prefix=3)


def test_per_leaf_statistics_stay_out_of_tree_map_params_and_state_shardings():
    """Per-leaf statistics are replicated scalars: Optax's tree_map_params must not treat them as params."""
    params = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    tx = track(atx.adam(0.1), per_leaf=True)
    state = tx.init(params)
    mapped = optax.tree_utils.tree_map_params(tx, lambda p: p + 7, state)
    chex.assert_trees_all_equal(mapped.stats, state.stats)
    chex.assert_trees_all_equal(mapped.inner_state[0].mu, {"b": jnp.full(3, 7.0), "w": jnp.full((2, 3), 7.0)})


def test_bad_knobs_name_the_argument():
    tx = atx.adam(0.1)
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        track(tx, every=0)
    with pytest.raises(TypeError, match="every must be an int >= 1, got 2.5"):
        track(tx, every=2.5)
    with pytest.raises(TypeError, match="sample must be an int >= 1 or None"):
        track(tx, sample=1e4)
    with pytest.raises(ValueError, match="sample must be >= 1"):
        summarize(jnp.ones(2), jnp.ones(2), sample=0)
    with pytest.raises(TypeError, match="per_leaf must be a bool"):
        track(tx, per_leaf="yes")
    with pytest.raises(ValueError, match="paths, and these repeat"):
        summarize(
            {"a/b": jnp.ones(1), "a": {"b": jnp.ones(1)}}, {"a/b": jnp.ones(1), "a": {"b": jnp.ones(1)}}, per_leaf=True
        )


# ----------------------------------------------------------------------------- one traversal (compiled HLO)
# A fused computation's header in the compiled HLO text: its parameters and its result.
_COMPUTATION = re.compile(r"^%[\w.\-]+ \((?P<params>[^)]*)\) -> (?P<result>.+) \{$", re.M)


def _sizes(shapes):
    return [math.prod(int(n) for n in dims.split(",") if n) for dims in re.findall(r"\[([\d,]*)\]", shapes)]


def _traversals(hlo, size):
    """The results of the fused computations that read a leaf-sized array and write none: the reductions."""
    out = []
    for match in _COMPUTATION.finditer(hlo):
        reads = size in [
            math.prod(map(int, filter(None, d.split(",")))) for d in re.findall(r"\[([\d,]*)\]", match["params"])
        ]
        writes = re.findall(r"\[([\d,]*)\]", match["result"])
        if reads and all(math.prod(map(int, filter(None, d.split(",")))) != size for d in writes):
            out.append(match["result"])
    return out


@pytest.mark.parametrize("shape", [(1 << 18,), (512, 512)], ids=["vector", "matrix"])
def test_all_statistics_of_a_leaf_come_from_one_traversal(shape):
    """In the compiled step of track(adam) on one large leaf, one fused reduction reads the leaf and writes the
    seven sums and extremes; the histogram reads a sample of at most 65536 coordinates; and XLA runs at most one
    more array-sized loop than for Adam alone (it writes Adam's direction once for the step and the statistics).
    With ``sample=None`` the histogram is a second traversal: the test can tell them apart."""
    from benchmarks.hlo import count_array_fusions

    size = math.prod(shape)
    w, g = jnp.ones(shape), jnp.full(shape, 0.5)

    def compiled(tx):
        return jax.jit(tx.update).lower(g, tx.init(w), w).compile().as_text()

    plain, tracked, every_coordinate = (
        compiled(atx.adam(1e-3)),
        compiled(track(atx.adam(1e-3))),
        compiled(track(atx.adam(1e-3), sample=None)),
    )
    reads = _traversals(tracked, size)
    (reduction,) = [r for r in reads if "s32[" not in r]
    assert reduction.count("f32[") == 7  # Nonzero count, rate sum, min, max, |u|^2, |g|^2, |w|^2.
    sampled = [n for r in reads if "s32[" in r for n in _sizes(r)]  # The histogram's bins (of u and g's sample).
    assert sampled and max(sampled) <= 65536
    assert count_array_fusions(tracked, [size]) <= count_array_fusions(plain, [size]) + 1
    reads = _traversals(every_coordinate, size)
    assert sorted(reads) == sorted([reduction, f"s32[{1 << (31 - 19)}]"])  # The sums, and a scatter of every bin.
