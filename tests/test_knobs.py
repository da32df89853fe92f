"""The building blocks' knobs beyond the lecture keep the library's properties: jit, dtypes, abstract init,
inject_hyperparams. Their numbers are checked against PyTorch and Keras in tests/test_parity.py and against
Optax in tests/test_optax_equivalence.py."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import nested_params

VARIANTS = {
    "adagrad-eps-outside": (atx.scale_by_adagrad, dict(eps=0.1, eps_in_sqrt=False)),
    "rms-eps-outside": (atx.scale_by_rms, dict(eps=0.1, eps_in_sqrt=False)),
    "rms-centered": (atx.scale_by_rms, dict(decay=0.8, eps=0.1, centered=True)),
    "momentum-first-step-undampened": (
        atx.scale_by_momentum,
        dict(beta=0.8, dampening=0.3, first_step_undampened=True),
    ),
    "adam-eps-hat": (atx.scale_by_adam, dict(eps=0.1, eps_hat=True)),
    "adam-amsgrad-raw": (atx.scale_by_adam, dict(b2=0.9, amsgrad="raw")),
    "adam-amsgrad-corrected": (atx.scale_by_adam, dict(b2=0.9, amsgrad="corrected")),
    "nadam": (atx.scale_by_nadam, dict(b2=0.9, eps=0.1, momentum_decay=0.1)),
}
variants = pytest.mark.parametrize(("block", "kwargs"), list(VARIANTS.values()), ids=list(VARIANTS))


def _grad(params, t):
    return jax.tree.map(lambda w: w - 1 + jnp.asarray(t + 1, w.dtype) / 10, params)


def _typeof(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@variants
def test_jit_equals_eager(block, kwargs):
    tx = block(**kwargs)
    params = nested_params()
    state = eager_state = tx.init(params)
    for t in range(6):
        updates, state = jax.jit(tx.update)(_grad(params, t), state)
        with jax.disable_jit():
            eager_updates, eager_state = tx.update(_grad(params, t), eager_state)
        # Fused vs op-by-op float32: a few ulps of O(1) values.
        chex.assert_trees_all_close(updates, eager_updates, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(state, eager_state, rtol=1e-6, atol=1e-6)


@variants
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32], ids=lambda d: jnp.dtype(d).name)
def test_state_and_update_types_are_stable(block, kwargs, dtype):
    tx = block(**kwargs)
    params = nested_params(dtype)
    state = tx.init(params)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    assert _typeof(tx.init(abstract)) == _typeof(state)
    updates, new_state = jax.jit(tx.update)(_grad(params, 0), state)
    assert _typeof(updates) == _typeof(params)
    assert _typeof(new_state) == _typeof(state)
    chex.assert_tree_all_finite(updates)


@variants
def test_inject_hyperparams_equals_plain(block, kwargs):
    plain, injected = block(**kwargs), optax.inject_hyperparams(block)(**kwargs)
    params = nested_params()
    s_plain, s_injected = plain.init(params), injected.init(params)
    for t in range(5):
        u_plain, s_plain = jax.jit(plain.update)(_grad(params, t), s_plain, params)
        u_injected, s_injected = jax.jit(injected.update)(_grad(params, t), s_injected, params)
        chex.assert_trees_all_close(u_injected, u_plain, rtol=1e-6, atol=1e-6)


def test_bad_knobs_raise():
    with pytest.raises(ValueError, match=r"^amsgrad must be one of \(None, 'raw', 'corrected'\), got 'max'"):
        atx.scale_by_adam(amsgrad="max")
    for block, knob in [
        (atx.scale_by_adagrad, "eps_in_sqrt"),
        (atx.scale_by_rms, "centered"),
        (atx.scale_by_momentum, "first_step_undampened"),
        (atx.scale_by_adam, "eps_hat"),
    ]:
        with pytest.raises(TypeError, match=rf"^{knob} must be a bool"):
            block(**{knob: 1})
