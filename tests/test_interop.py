"""Optax's tools and checkpoints find adaptive_tx's state by name, and training moves between the two mid-run.

Every state field of adaptive_tx has the name (and meaning) of Optax's: ``count``, ``mu``, ``nu``,
``sum_of_squares``, ``e_g``, ``e_x``, ``trace``. So ``optax.tree_utils.tree_get(state, "nu")`` reads our
state, and a checkpoint of one library continues in the other. The recipe, either way round: restore the
checkpoint into its own library's abstract state, then move it by name into the other's fresh state::

    checkpointer = orbax.checkpoint.StandardCheckpointer()
    abstract = jax.eval_shape(lambda p: (p, optax_tx.init(p)), params)
    params, optax_state = checkpointer.restore(path, abstract)
    state = move_by_name(optax_state, atx_tx.init(params))  # Then train on with atx_tx.

with this helper (the one these tests use)::

    def move_by_name(source, target):
        # target with every field of its NamedTuples (count, mu, nu, ...) read from source by name.
        nodes = jax.tree.leaves(target, is_leaf=lambda node: hasattr(node, "_fields"))
        names = {name for node in nodes if hasattr(node, "_fields") for name in node._fields}
        absent = object()
        values = {name: optax.tree_utils.tree_get(source, name, absent) for name in names}
        if missing := sorted(name for name, value in values.items() if value is absent):
            raise KeyError(f"the source state has no field named {', '.join(missing)}")
        return optax.tree_utils.tree_set(target, **values)

Where the chains have the same structure (``adam``, ``rmsprop``, ``adagrad``, and ``momentum(dampening=0.0)``
beside ``optax.sgd(momentum=...)``), the tree paths match too and a plain restore into our abstract state,
``checkpointer.restore(path, jax.eval_shape(lambda p: (p, atx_tx.init(p)), params))``, reads an Optax
checkpoint directly. ``optax.adadelta``'s chain starts with ``add_decayed_weights``' state and ours does
not, so there only the move by name works.

Where our state holds more than Optax's, no Optax state can fill it, and ``move_by_name`` raises a
``KeyError`` naming the field: ``scale_by_nadam``'s ``mu_product`` (the product of Dozat's momentum
schedule; Optax's NAdam keeps ``b1`` constant and stores ``count, mu, nu`` only) and
``scale_by_momentum(first_step_undampened=True)``'s ``count`` (Optax's ``TraceState`` has ``trace`` only).
Moving the other way, from such a state into Optax's, works: the extra field is left behind. Each name must
occur once in each state (``tree_get`` raises otherwise): a params dict with a key named like a field, say
``"mu"``, needs ``tree_get``'s ``filtering`` argument.
"""

import functools
import inspect
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import grad, jitted_step, max_relative_error, nested_params
from tests.parity import require


def move_by_name(source, target):
    # target with every field of its NamedTuples (count, mu, nu, ...) read from source by name.
    nodes = jax.tree.leaves(target, is_leaf=lambda node: hasattr(node, "_fields"))
    names = {name for node in nodes if hasattr(node, "_fields") for name in node._fields}
    absent = object()
    values = {name: optax.tree_utils.tree_get(source, name, absent) for name in names}
    if missing := sorted(name for name, value in values.items() if value is absent):
        raise KeyError(f"the source state has no field named {', '.join(missing)}")
    return optax.tree_utils.tree_set(target, **values)


LR = 0.05
# (id, Optax's optimizer, ours, our state's field names, whether the chains have the same tree paths).
PAIRS = [
    ("adam", lambda: optax.adam(LR), lambda: atx.adam(LR), ("count", "mu", "nu"), True),
    ("rmsprop", lambda: optax.rmsprop(LR), lambda: atx.rmsprop(LR), ("nu",), True),
    ("adadelta", lambda: optax.adadelta(1.0), lambda: atx.adadelta(1.0), ("e_g", "e_x"), False),
    (
        "adagrad",  # Optax's defaults: eps 1e-7 and a sum of squares starting at 0.1.
        lambda: optax.adagrad(LR),
        lambda: atx.adagrad(LR, eps=1e-7, initial_accumulator=0.1),
        ("sum_of_squares",),
        True,
    ),
    ("momentum", lambda: optax.sgd(LR, momentum=0.9), lambda: atx.momentum(LR, dampening=0.0), ("trace",), True),
]
pairs = pytest.mark.parametrize(
    ("theirs", "ours", "fields", "same_paths"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS]
)

# The same equations in float64 in a different operation order (the move itself copies bits): measured
# differences are 1.2e-15 at most; 1e-12 leaves room for a different XLA build and nothing else.
RTOL = 1e-12


@functools.cache
def _stepper(tx):
    """One jitted step of ``tx``, compiled once for all of a test's runs."""
    return jitted_step(tx, grad)


def _train(tx, params, state, start, steps):
    """``steps`` jitted steps from step ``start``; Optax's own code needs standard dtype promotion."""
    with jax.numpy_dtype_promotion("standard"):
        for t in range(start, start + steps):
            params, state = _stepper(tx)(params, state, t)
    return params, state


def _fields(state, names):
    return {name: optax.tree_utils.tree_get(state, name) for name in names}


def _close(actual, expected, what):
    error = max_relative_error(actual, jax.tree.map(np.asarray, expected))
    assert error < RTOL, f"{what}: relative difference {error:.3g}"
    return error


def _named_fields(state):
    nodes = jax.tree.leaves(state, is_leaf=lambda node: hasattr(node, "_fields"))
    return tuple(name for node in nodes if hasattr(node, "_fields") for name in node._fields)


# ----------------------------------------------------------------------------- Optax's tools read our state


@pairs
def test_tree_get_finds_our_fields_with_optax_values(theirs, ours, fields, same_paths):
    del same_paths
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        theirs, ours = theirs(), ours()
        _, optax_state = _train(theirs, params, theirs.init(params), 0, 2)
        _, our_state = _train(ours, params, ours.init(params), 0, 2)
    assert _named_fields(our_state) == fields  # Nothing but the fields Optax also has.
    for name in fields:
        value, expected = optax.tree_utils.tree_get(our_state, name), optax.tree_utils.tree_get(optax_state, name)
        assert value is not None and expected is not None, name
        if name == "count":
            assert int(value) == int(expected) == 2
            continue
        assert jax.tree.structure(value) == jax.tree.structure(params), name
        assert float(max(np.max(np.abs(x)) for x in jax.tree.leaves(value))) > 0, name  # Not the initial zeros.
        _close(value, expected, name)


def test_tree_get_reads_adams_moments_as_the_equations_give_them():
    # By hand, two gradients: v_2 = b1 (1 - b1) g_1 + (1 - b1) g_2, s_2 = b2 (1 - b2) g_1^2 + (1 - b2) g_2^2.
    g1, g2 = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    with jax.enable_x64(True):  # float64: in float32, 1 - 0.999 alone is 1.3e-5 off.
        tx = atx.adam(LR)
        state = tx.init(jnp.asarray(g1))
        for g in (g1, g2):
            _, state = tx.update(jnp.asarray(g), state)
    np.testing.assert_allclose(optax.tree_utils.tree_get(state, "mu"), 0.9 * 0.1 * g1 + 0.1 * g2, rtol=1e-14)
    np.testing.assert_allclose(
        optax.tree_utils.tree_get(state, "nu"), 0.999 * 0.001 * g1**2 + 0.001 * g2**2, rtol=1e-12
    )
    assert int(optax.tree_utils.tree_get(state, "count")) == 2


# ----------------------------------------------------------------------------- checkpoints across libraries


def _save_and_restore(tmp_path, params, state, abstract):
    ocp = require("orbax.checkpoint")
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(tmp_path / "checkpoint", (params, state))
    checkpointer.wait_until_finished()
    return checkpointer.restore(tmp_path / "checkpoint", abstract)


@pytest.mark.exhaustive  # Orbax (the checkpoint extra), which CI installs.
@pytest.mark.parametrize("direction", ["optax-to-atx", "atx-to-optax"])
@pairs
def test_checkpoint_moved_by_name_continues_as_if_uninterrupted(tmp_path, theirs, ours, fields, same_paths, direction):
    del same_paths
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        first, then = (theirs(), ours()) if direction == "optax-to-atx" else (ours(), theirs())
        uninterrupted = _train(first, params, first.init(params), 0, 10)
        halfway = _train(first, params, first.init(params), 0, 5)
        abstract = jax.eval_shape(lambda p: (p, first.init(p)), params)
        restored_params, restored_state = _save_and_restore(tmp_path, *halfway, abstract)
        state = move_by_name(restored_state, then.init(restored_params))
        chex.assert_trees_all_equal_shapes_and_dtypes(state, then.init(params))
        for name in fields:  # The move copies bits.
            chex.assert_trees_all_equal(optax.tree_utils.tree_get(state, name), _fields(halfway[1], [name])[name])
        resumed = _train(then, restored_params, state, 5, 5)
        restarted = _train(then, restored_params, then.init(params), 5, 5)  # The state thrown away instead.
    _close(resumed[0], uninterrupted[0], "params")
    for name, value in _fields(resumed[1], fields).items():
        _close(value, _fields(uninterrupted[1], [name])[name], name)
    assert max_relative_error(restarted[0], jax.tree.map(np.asarray, uninterrupted[0])) > 1e-2  # The state matters.


@pairs
def test_tree_paths_match_where_the_chains_do(theirs, ours, fields, same_paths):
    del fields
    params = nested_params()
    paths = [
        [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tx().init(params))]
        for tx in (theirs, ours)
    ]
    assert (paths[0] == paths[1]) == same_paths, paths


@pytest.mark.exhaustive  # Orbax (the checkpoint extra), which CI installs.
@pytest.mark.parametrize(
    ("theirs", "ours", "fields"), [p[1:4] for p in PAIRS if p[4]], ids=[p[0] for p in PAIRS if p[4]]
)
def test_plain_restore_of_an_optax_checkpoint_into_our_state(tmp_path, theirs, ours, fields):
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        theirs, atx_tx = theirs(), ours()
        uninterrupted = _train(theirs, params, theirs.init(params), 0, 10)
        halfway = _train(theirs, params, theirs.init(params), 0, 5)
        # The recipe: Optax's checkpoint, restored straight into adaptive_tx's abstract state.
        abstract = jax.eval_shape(lambda p: (p, atx_tx.init(p)), params)
        restored_params, state = _save_and_restore(tmp_path, *halfway, abstract)
        assert jax.tree.structure(state) == jax.tree.structure(atx_tx.init(params))  # Our classes, Optax's bits.
        for name in fields:
            chex.assert_trees_all_equal(optax.tree_utils.tree_get(state, name), _fields(halfway[1], [name])[name])
        resumed = _train(atx_tx, restored_params, state, 5, 5)
    _close(resumed[0], uninterrupted[0], "params")
    for name, value in _fields(resumed[1], fields).items():
        _close(value, _fields(uninterrupted[1], [name])[name], name)


# ----------------------------------------------------------------------------- where our state holds more

MORE_THAN_OPTAX = [
    (
        "nadam-mu_product",  # With momentum_decay = inf Dozat's schedule is the constant b1: Optax's NAdam.
        lambda: optax.nadam(LR),
        lambda: optax.chain(atx.scale_by_nadam(momentum_decay=float("inf")), optax.scale(-LR)),
        "mu_product",
    ),
    (
        "momentum-first-step-undampened-count",  # With dampening 0 the first step is undampened anyway.
        lambda: optax.sgd(LR, momentum=0.9),
        lambda: optax.chain(atx.scale_by_momentum(dampening=0.0, first_step_undampened=True), optax.scale(-LR)),
        "count",
    ),
]


@pytest.mark.parametrize(
    ("theirs", "ours", "extra"), [m[1:] for m in MORE_THAN_OPTAX], ids=[m[0] for m in MORE_THAN_OPTAX]
)
def test_fields_optax_lacks_cannot_be_moved_in_but_are_left_behind_going_out(theirs, ours, extra):
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        theirs, ours = theirs(), ours()
        assert extra in _named_fields(ours.init(params)) and extra not in _named_fields(theirs.init(params))
        with pytest.raises(KeyError, match=f"no field named {extra}"):
            move_by_name(theirs.init(params), ours.init(params))
        halfway = _train(ours, params, ours.init(params), 0, 5)
        uninterrupted = _train(ours, *halfway, 5, 5)
        moved = move_by_name(halfway[1], theirs.init(params))  # Into Optax's: the rest moves, the extra stays.
        for name in _named_fields(moved):
            chex.assert_trees_all_equal(
                optax.tree_utils.tree_get(moved, name), optax.tree_utils.tree_get(halfway[1], name)
            )
        resumed = _train(theirs, halfway[0], moved, 5, 5)
    _close(resumed[0], uninterrupted[0], "params")


def test_the_module_docstring_shows_the_helper_these_tests_use():
    assert textwrap.indent(inspect.getsource(move_by_name), "    ") in __doc__
