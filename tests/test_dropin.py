"""Optax's conventions, held for the whole registry: the updates' dtype (and Optax's ``lax.cond`` pattern),
explicit state dtypes (complex included), Optax's keyword arguments with Optax's meaning, and params leaves
that are not floating point."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import REGISTRY, expected_updates_dtype, parametrize_entries, registry

PARAM_DTYPES = [jnp.float16, jnp.bfloat16, jnp.float32]


def _tree(values, dtypes):
    """One leaf per dtype (one compiled step covers them all), named by the dtype."""
    return {jnp.dtype(d).name: jnp.asarray(values, d) for d in dtypes}


@registry
def test_updates_keep_the_params_dtype_and_lax_cond_accepts_them(entry):
    # Optax's own pattern (its test_state_shape_dtype_shard_stability): a step under lax.cond whose other
    # branch returns zeros like the params. It traces only if both branches have the same dtypes.
    tx = entry()
    params = _tree([[0.5, -1.5, 2.0], [0.25, 1.0, -3.0]], PARAM_DTYPES)
    grads = _tree([[0.3, -0.2, 1.1], [-2.0, 0.7, 0.05]], PARAM_DTYPES)
    expected = {name: expected_updates_dtype(entry, name, name) for name in params}

    @jax.jit
    def both(params, state, ok):
        direct = tx.update(grads, state, params)
        zeros = {name: jnp.zeros_like(p, dtype=expected[name]) for name, p in params.items()}
        guarded = jax.lax.cond(ok, lambda: tx.update(grads, state, params), lambda: (zeros, state))
        return direct, guarded

    state = tx.init(params)
    (updates, _), (guarded, _) = both(params, state, jnp.asarray(True))
    assert {name: u.dtype for name, u in updates.items()} == expected, entry
    for name, u in updates.items():
        assert guarded[name].dtype == expected[name]
        np.testing.assert_array_equal(np.asarray(guarded[name], np.float32), np.asarray(u, np.float32))
        assert np.any(np.asarray(u, np.float32) != 0), (entry, name)  # A real step: not a silent zero.
    (_, _), (skipped, _) = both(params, state, jnp.asarray(False))
    assert all(not np.any(np.asarray(u, np.float32)) for u in skipped.values())


def test_bfloat16_adam_step_is_the_learning_rate_in_bfloat16():
    # Adam's first step is lr * v^/ sqrt(s^) = lr * sign(g) / (1 + eps / |g|): -0.1 rounded once to bfloat16,
    # whose nearest value is 0.10009765625 (2^-4 * 1.6015625). The second moment stays float32 inside.
    params = jnp.array([1.0, -2.0, 3.0], jnp.bfloat16)
    tx = atx.adam(0.1)
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(jnp.array([0.5, -1.5, 2.0], jnp.bfloat16), state, params)
    assert updates.dtype == jnp.bfloat16 and state[0].nu.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(updates, np.float64), [-0.10009765625, 0.10009765625, -0.10009765625])


def test_float16_gradients_on_float32_params_give_float32_updates():
    # The wider of the two: a float32 learning rate of 2e-8 is not rounded away in float16.
    params = jnp.ones(3, jnp.float32)
    grads = jnp.array([0.5, -1.5, 2.0], jnp.float16)
    for tx in (atx.adam(2e-8), atx.adagrad(2e-8), atx.rmsprop(2e-8)):
        updates, _ = tx.update(grads, tx.init(params), params)
        assert updates.dtype == jnp.float32
        assert np.all(np.abs(np.asarray(updates)) > 1e-8)


@pytest.mark.parametrize(
    ("tx", "expected"),
    [
        # The gradients' dtype stands in for the params' ...
        (atx.adagrad(0.1), jnp.bfloat16),
        (atx.scale_by_rms(), jnp.bfloat16),
        # ... and so does a first moment, which has the params' dtype unless an argument says otherwise.
        (atx.adam(0.1), jnp.bfloat16),
        (atx.adam(0.1, mu_dtype=jnp.float32), jnp.float32),
    ],
)
def test_without_params_the_gradients_and_first_moments_decide(tx, expected):
    params = jnp.ones(2, jnp.bfloat16)
    updates, _ = tx.update(jnp.array([0.5, -2.0], jnp.bfloat16), tx.init(params))
    assert updates.dtype == expected


# ----------------------------------------------------------------------------- explicit state dtypes

# Optax's field names say what a field is: a first moment follows the gradients (complex for complex
# params), a squared accumulator is real.
FIRST_MOMENTS = {"mu", "trace"}
SQUARED = {"nu", "nu_max", "sum_of_squares", "e_g", "e_x"}
STATE_DTYPES = [jnp.bfloat16, jnp.float32, jnp.complex64]
WITH_DTYPES = [e for e in REGISTRY if any(n.endswith("_dtype") for n in inspect.signature(e.make).parameters)]


def _fields(state):
    """``{name: leaf}`` for every params-shaped field of a (possibly nested) optimizer state."""
    found = {}

    def visit(node):
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            for name, value in zip(node._fields, node, strict=True):
                if name in FIRST_MOMENTS | SQUARED:
                    found[name] = value
                else:
                    visit(value)
        elif isinstance(node, tuple | list):
            for value in node:
                visit(value)

    visit(state)
    return found


@parametrize_entries(WITH_DTYPES)
@pytest.mark.parametrize("param_dtype", [jnp.bfloat16, jnp.float32, jnp.complex64], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("state_dtype", STATE_DTYPES, ids=lambda d: jnp.dtype(d).name)
def test_explicit_state_dtypes_win_or_are_refused_naming_the_leaf(entry, param_dtype, state_dtype):
    names = [n for n in inspect.signature(entry.make).parameters if n.endswith("_dtype")]
    overrides = {**(entry.complex or {}), **{n: state_dtype for n in names}}
    tx = entry(**overrides)
    params = {"w": jnp.array([1.0, -2.0], param_dtype)}
    complex_params, complex_state = (jnp.issubdtype(d, jnp.complexfloating) for d in (param_dtype, state_dtype))
    policy_state = entry(**{n: None for n in names}).init({"w": jnp.zeros(2)})
    first_moments = any(name in FIRST_MOMENTS for name in _fields(policy_state))
    if complex_params and not complex_state and first_moments:
        # A real first moment of complex gradients would drop their imaginary part: refused at init.
        with pytest.raises(TypeError, match=r"params leaf \['w'\] is complex .* drop the imaginary part"):
            tx.init(params)
        return
    state = tx.init(params)
    fields = _fields(state)
    assert fields, entry
    real_counterpart = jnp.dtype(jnp.float32) if complex_state else jnp.dtype(state_dtype)
    for name, tree in fields.items():
        # A squared accumulator is real: a complex dtype names its precision (complex64: float32).
        expected = real_counterpart if name in SQUARED else jnp.dtype(state_dtype)
        assert [x.dtype for x in jax.tree.leaves(tree)] == [expected], (name, tree)
    grads = {"w": jnp.array([0.5, -0.25], param_dtype)}
    updates, new_state = tx.update(grads, state, params)
    assert jax.tree.map(lambda x: x.dtype, _fields(new_state)) == jax.tree.map(lambda x: x.dtype, fields)
    # Real params give real updates, even from a complex state (whose imaginary part stays 0).
    assert jnp.issubdtype(updates["w"].dtype, jnp.complexfloating) == complex_params
    assert np.all(np.asarray(jnp.abs(updates["w"]), np.float32) > 0)


def test_complex_params_with_complex_state_match_the_float32_run_on_real_data():
    # A complex64 first moment of purely real complex data gives the real run's numbers: the dtype is used
    # as asked, not silently replaced.
    real, cplx = jnp.array([1.0, -2.0]), jnp.array([1.0, -2.0], jnp.complex64)
    g_real, g_cplx = jnp.array([0.5, -0.25]), jnp.array([0.5, -0.25], jnp.complex64)
    tx_real, tx_cplx = atx.adam(0.1, mu_dtype=jnp.float32), atx.adam(0.1, mu_dtype=jnp.complex64)
    u_real, _ = tx_real.update(g_real, tx_real.init(real), real)
    u_cplx, s_cplx = tx_cplx.update(g_cplx, tx_cplx.init(cplx), cplx)
    assert s_cplx[0].mu.dtype == jnp.complex64 and s_cplx[0].nu.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(u_cplx), np.asarray(u_real), rtol=1e-6)


# ----------------------------------------------------------------------------- Optax's keywords

# Each function and its Optax counterpart, with arguments that set every one of Optax's keywords away from
# its default, and what else our function needs to be that counterpart (scale_by_stddev is centered RMSprop).
COUNTERPARTS = [
    (atx.adagrad, optax.adagrad, {"learning_rate": 0.1, "initial_accumulator_value": 0.2, "eps": 1e-3}, {}),
    (atx.scale_by_adagrad, optax.scale_by_rss, {"initial_accumulator_value": 0.2, "eps": 1e-3}, {}),
    (
        atx.rmsprop,
        optax.rmsprop,
        {
            "learning_rate": 0.05,
            "decay": 0.8,
            "eps": 1e-3,
            "initial_scale": 0.1,
            "eps_in_sqrt": False,
            "centered": True,
            "momentum": 0.5,
            "nesterov": True,
            "bias_correction": True,
        },
        {},
    ),
    (
        atx.scale_by_rms,
        optax.scale_by_rms,
        {"decay": 0.8, "eps": 1e-3, "initial_scale": 0.1, "eps_in_sqrt": False, "bias_correction": True},
        {},
    ),
    (
        atx.scale_by_rms,
        optax.scale_by_stddev,
        {"decay": 0.8, "eps": 1e-3, "initial_scale": 0.1, "eps_in_sqrt": True, "bias_correction": True},
        {"centered": True},
    ),
    (
        atx.adadelta,
        optax.adadelta,
        {
            "learning_rate": 0.5,
            "rho": 0.8,
            "eps": 1e-3,
            "weight_decay": 0.1,
            "weight_decay_mask": {"w": True, "b": False},
        },
        {},
    ),
    (atx.scale_by_adadelta, optax.scale_by_adadelta, {"rho": 0.8, "eps": 1e-3}, {}),
    (
        atx.momentum,
        optax.sgd,
        {"learning_rate": 0.1, "momentum": 0.8, "nesterov": True, "accumulator_dtype": jnp.float32},
        {},
    ),
    (atx.scale_by_momentum, optax.trace, {"decay": 0.8, "nesterov": True, "accumulator_dtype": jnp.float32}, {}),
    (
        atx.adam,
        optax.adam,
        {
            "learning_rate": 0.1,
            "b1": 0.8,
            "b2": 0.9,
            "eps": 1e-3,
            "eps_root": 1e-4,
            "mu_dtype": jnp.float32,
            "nesterov": True,
        },
        {},
    ),
    (
        atx.scale_by_adam,
        optax.scale_by_adam,
        {"b1": 0.8, "b2": 0.9, "eps": 1e-3, "eps_root": 1e-4, "mu_dtype": jnp.float32, "nesterov": True},
        {},
    ),
]
counterparts = pytest.mark.parametrize(
    ("ours", "theirs", "kwargs", "ours_also"),
    COUNTERPARTS,
    ids=[f"{o.__name__}-{t.__name__}" for o, t, _, _ in COUNTERPARTS],
)


def test_every_name_shared_with_optax_is_compared_with_it():
    # A public transformation named like an Optax one takes Optax's keywords: it must be in COUNTERPARTS.
    # optax.bias_correction(moment, decay, count) is a helper on one moment, not a transformation.
    shared = {name for name in atx.__all__ if name.islower() and hasattr(optax, name)} - {"bias_correction"}
    assert shared <= {ours.__name__ for ours, *_ in COUNTERPARTS}, shared


@counterparts
def test_every_optax_keyword_is_accepted(ours, theirs, kwargs, ours_also):
    # Against the installed Optax: a keyword Optax adds shows up here.
    optax_names = set(inspect.signature(theirs).parameters)
    assert optax_names <= set(inspect.signature(ours).parameters), optax_names - set(inspect.signature(ours).parameters)
    assert set(kwargs) == optax_names, "the test sets every Optax keyword"


@counterparts
def test_optax_keywords_have_optax_meaning(ours, theirs, kwargs, ours_also):
    params = {"w": jnp.array([0.5, -1.5, 2.0]), "b": jnp.asarray(-0.75)}
    tx_ours, tx_theirs = ours(**kwargs, **ours_also), theirs(**kwargs)
    s_ours, s_theirs = tx_ours.init(params), tx_theirs.init(params)
    for t in range(5):
        grads = jax.tree.map(lambda p, t=t: jnp.cos(3.0 * p + t) * (1.0 + p), params)
        u_ours, s_ours = tx_ours.update(grads, s_ours, params)
        with jax.numpy_dtype_promotion("standard"):  # Optax's bias correction takes decay ** int32 count.
            u_theirs, s_theirs = tx_theirs.update(grads, s_theirs, params)
        # float32, the same equation in a different order of operations: a few ulps per step.
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), u_ours, u_theirs)
        params = optax.apply_updates(params, u_theirs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: atx.adagrad(0.1, initial_accumulator=0.3, initial_accumulator_value=0.2), "initial_accumulator"),
        (lambda: atx.momentum(0.1, beta=0.5, momentum=0.8), "momentum"),
        (lambda: atx.scale_by_momentum(dampening=0.1, decay=0.8), "decay"),
    ],
)
def test_our_name_and_optaxs_together_are_refused(make, message):
    with pytest.raises(TypeError, match=message):
        make()


# ----------------------------------------------------------------------------- non-float leaves


@registry
@pytest.mark.parametrize("leaf", [jnp.asarray(3, jnp.int32), jnp.array([True, False])], ids=["int32", "bool"])
def test_non_float_params_leaves_are_refused_naming_the_leaf_and_the_way_out(entry, leaf):
    params = {"w": jnp.ones(3), "step": leaf}
    with pytest.raises(TypeError, match=r"params leaf \['step'\] has dtype .*optax\.masked.*nnx\.Param"):
        entry().init(params)


def test_optax_masked_is_the_way_out():
    params = {"w": jnp.array([1.0, -2.0]), "step": jnp.asarray(7, jnp.int32)}
    tx = optax.masked(atx.adam(0.1), {"w": True, "step": False})
    state = tx.init(params)
    grads = {"w": jnp.array([0.5, -0.5]), "step": np.zeros((), jax.dtypes.float0)}
    updates, _ = tx.update(grads, state, params)
    np.testing.assert_allclose(np.asarray(updates["w"]), [-0.1, 0.1], rtol=1e-6)  # Adam's first step: lr sign(g).
