"""Property-based tests (hypothesis): random pytrees (nesting, empty subtrees, scalars, zero-size leaves),
dtypes and in-range hyperparameters, for every entry of the registry, in README's ``pytest`` too: it is the
property that touches every entry there (the others run on a slice of the registry; tests/helpers.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import REGISTRY, expected_updates_dtype

SHAPES = [(), (1,), (3,), (0,), (2, 3), (2, 0), (1, 1, 2)]
DTYPES = [jnp.float32, jnp.float16, jnp.bfloat16]
# Per entry, 52 entries: about 1.3 times what 5 entries x 30 examples took before (each example compiles its
# tree's update once and runs the steps op by op as well, which dominates).
EXAMPLES = 2
STEPS = 3
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
def problems(draw, entry):
    """Hyperparameters in the entry's ranges, params and gradients of two dtypes drawn apart, one tree."""
    kwargs = {name: draw(st.floats(lo, hi)) for name, (lo, hi) in entry.ranges.items()}
    param_dtype, grad_dtype = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    # A None root is no params at all (decoupled weight decay rightly refuses it); None subtrees stay.
    params = _materialize(draw(trees.filter(lambda tree: tree is not None)), param_dtype)
    grads = _materialize(jax.tree.map(lambda x: (x.shape, draw(st.integers(0, 2**31 - 1))), params), grad_dtype)
    return kwargs, params, grads


def _types(tree):
    return jax.tree.structure(tree), jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@pytest.mark.parametrize("entry", REGISTRY, ids=str)
def test_random_trees_dtypes_and_hyperparameters(entry):
    # One jitted update serves all of the entry's examples: the drawn hyperparameters are its arguments
    # (Python floats, so traced as weakly typed float32 scalars, promoting as the numbers themselves do), so
    # only a tree shape or dtype not seen before compiles again. Arguments that are not numbers (dtype names,
    # flags) stay the entry's.
    fixed = {k: v for k, v in entry.kwargs.items() if k not in entry.ranges}
    update = jax.jit(lambda kwargs, grads, state, params: entry.make(**fixed, **kwargs).update(grads, state, params))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(problems(entry))
    def check(problem):
        kwargs, params, grads = problem
        tx = entry.make(**fixed, **kwargs)
        state = tx.init(params)
        for _ in range(STEPS):
            updates, new_state = update(kwargs, grads, state, params)
            with jax.disable_jit():
                eager_updates, _ = tx.update(grads, state, params)
            # Finite in, finite out; shapes, dtypes and structure preserved, step after step.
            assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), kwargs
            assert jax.tree.structure(updates) == jax.tree.structure(grads)
            assert [u.shape for u in jax.tree.leaves(updates)] == [g.shape for g in jax.tree.leaves(grads)]
            assert [u.dtype for u in jax.tree.leaves(updates)] == [
                expected_updates_dtype(entry, g.dtype, p.dtype)
                for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params), strict=True)
            ]
            assert _types(new_state) == _types(state)
            for u, e in zip(jax.tree.leaves(updates), jax.tree.leaves(eager_updates), strict=True):
                if u.size:
                    u64, e64 = np.asarray(u, np.float64), np.asarray(e, np.float64)
                    assert np.max(np.abs(u64 - e64)) <= ULPS[u.dtype] * np.max(np.abs(e64)) + 1e-30, kwargs
            state = new_state

    check()
