"""Property-based tests (hypothesis): random pytrees (nesting, empty subtrees, scalars, zero-size leaves),
dtypes and in-range hyperparameters, for every optimizer in the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import OPTIMIZERS

SHAPES = [(), (1,), (3,), (0,), (2, 3), (2, 0), (1, 1, 2)]
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16]
# One rounding of the result in the leaf dtype (jit fuses the float32 math; eager runs it op by op), plus
# the float32 work underneath: two ulps of the leaf dtype, relative to the largest update of the leaf.
ULPS = {jnp.dtype(jnp.float32): 2e-6, jnp.dtype(jnp.float16): 2 * 2**-10, jnp.dtype(jnp.bfloat16): 2 * 2**-7}

leaves = st.tuples(st.sampled_from(SHAPES), st.integers(0, 2**31 - 1))
trees = st.recursive(
    leaves | st.just({}) | st.just(None),
    lambda children: (
        st.dictionaries(st.sampled_from("abcd"), children, max_size=3) | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=6,
)


def _materialize(tree, dtype):
    """Turn (shape, seed) leaves into arrays of finite values spanning several orders of magnitude."""

    def leaf(spec):
        shape, seed = spec
        rng = np.random.default_rng(seed)
        values = rng.normal(size=shape) * 10.0 ** rng.integers(-3, 2, size=shape)
        return jnp.asarray(values, dtype)

    return jax.tree.map(leaf, tree, is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], int))


@st.composite
def problems(draw, case):
    kwargs = {name: draw(st.floats(lo, hi)) for name, (lo, hi) in case.ranges.items()}
    kwargs["learning_rate"] = draw(st.floats(1e-4, 1.0))
    dtype = draw(st.sampled_from(DTYPES))
    params = _materialize(draw(trees), dtype)
    grads = [_materialize(jax.tree.map(lambda x: (x.shape, draw(st.integers(0, 2**31 - 1))), params), dtype)]
    return kwargs, params, grads[0]


def _types(tree):
    return jax.tree.structure(tree), jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def _policy_dtypes(grads, state):
    """The precision policy, stated independently: each update leaf comes in the wider of its gradient's
    dtype and the dtypes of the state leaves built for it (standard promotion: bfloat16 with float32 is
    float32)."""
    per_leaf = [[g.dtype] for g in jax.tree.leaves(grads)]
    for field in state:
        leaves = jax.tree.leaves(field)
        if len(leaves) == len(per_leaf) and field is not getattr(state, "count", None):
            for dtypes, s in zip(per_leaf, leaves, strict=True):
                dtypes.append(s.dtype)
    with jax.numpy_dtype_promotion("standard"):
        return [jnp.result_type(*dtypes) for dtypes in per_leaf]


@pytest.mark.parametrize("case", OPTIMIZERS, ids=str)
def test_random_trees_dtypes_and_hyperparameters(case):
    @settings(
        max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(problems(case))
    def check(problem):
        kwargs, params, grads = problem
        tx = case.optimizer(**kwargs)
        state = tx.init(params)
        jitted = jax.jit(tx.update)
        for _ in range(3):
            updates, new_state = jitted(grads, state, params)
            with jax.disable_jit():
                eager_updates, _ = tx.update(grads, state, params)
            # Finite in, finite out; shapes, dtypes and structure preserved, step after step.
            assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), kwargs
            assert jax.tree.structure(updates) == jax.tree.structure(grads)
            assert [u.shape for u in jax.tree.leaves(updates)] == [g.shape for g in jax.tree.leaves(grads)]
            assert [u.dtype for u in jax.tree.leaves(updates)] == _policy_dtypes(grads, new_state[0])
            assert _types(new_state) == _types(state)
            for u, e in zip(jax.tree.leaves(updates), jax.tree.leaves(eager_updates), strict=True):
                if u.size:
                    u64, e64 = np.asarray(u, np.float64), np.asarray(e, np.float64)
                    assert np.max(np.abs(u64 - e64)) <= ULPS[u.dtype] * np.max(np.abs(e64)) + 1e-30, kwargs
            state = new_state

    check()
