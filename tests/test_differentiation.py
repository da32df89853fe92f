"""Derivatives through the optimizers: ``jax.grad`` of a loss after a few steps, against finite differences.

Meta-learning and hyperparameter search differentiate the loss after K optimizer steps with respect to the
learning rate, the decays and the initial parameters. For every transformation in the registry
(tests/helpers.py), ``jax.grad`` of such a loss must be finite and equal central finite differences in
float64, also where a coordinate's gradient is exactly 0 at every step and eps is 0, so that the update
computes 0/0 and sqrt(0) there: the guarded square root and division of ``adaptive_tx._math`` must give a
finite derivative, not 0 * inf = NaN.

The problem. Parameters: a nested dict of a vector, a 2x3 matrix and a vector whose gradient is 0 at every
coordinate (an all-zero leaf: Keras's per-leaf ``clipnorm`` then takes the norm of 0). Training loss
``sum(a * phi(w))`` with ``phi(w) = w^2 / 2 + cos(3 w) / 10``, whose derivative ``w - 0.3 sin(3 w)`` is 0
only at ``w = 0`` (``|0.3 sin(3 w)| <= 0.9 |w|``) and whose second derivative is not 0, so the gradients
depend on the parameters. ``a`` is 0 on some coordinates of every leaf (exactly zero gradient at every
step) and negative on one coordinate of each trained leaf: there gradient ascent makes the gradient grow,
so AMSGrad's running maximum takes the current value and not only the first one, and its derivative with
respect to b2 is not 0. The objective after K steps, ``sum(b * (w_K - c)^2)``, weighs every coordinate
(all ``b != 0``), so a NaN derivative on a zero-gradient coordinate shows in the result.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
import adaptive_tx.compat.torch as tt
from tests.helpers import Entry, registry

K = 3  # Optimizer steps before the objective.

# NumPy float64 constants, made JAX arrays inside ``jax.enable_x64`` (at import time they would be float32).
# No trained coordinate starts at phi's stationary point 0, nor at a multiple of a learning rate in use, so no
# sign-like first step (eps = 0) lands exactly on 0, where the direction g / |g| is discontinuous.
PARAMS = {
    "layer": {"b": np.array([0.83, -0.57, 0.36, 1.21]), "w": np.array([[0.44, -1.13, 0.71], [-0.62, 0.97, 0.23]])},
    "frozen": np.array([0.52, -0.41]),
}
TRAIN_WEIGHTS = {  # a: 0 gives a gradient of exactly 0 at every step; a < 0 a growing gradient.
    "layer": {"b": np.array([1.0, 0.0, 0.7, -0.4]), "w": np.array([[0.0, 1.2, -0.3], [0.8, 0.0, 1.5]])},
    "frozen": np.array([0.0, 0.0]),
}
OBJECTIVE_WEIGHTS = {  # b: non-zero everywhere.
    "layer": {"b": np.array([1.0, 0.5, 2.0, 0.7]), "w": np.array([[1.5, 0.3, 1.0], [0.6, 1.2, 0.9]])},
    "frozen": np.array([0.8, 1.3]),
}
TARGET = {  # c
    "layer": {"b": np.array([0.1, -0.2, 0.3, 0.0]), "w": np.array([[0.2, 0.1, -0.3], [0.0, 0.4, -0.1]])},
    "frozen": np.array([0.3, 0.2]),
}
DIRECTION = jax.tree.map(lambda p: np.random.default_rng(0).standard_normal(p.shape), PARAMS)

CHAIN_LR = "lr of chain(block, scale(-lr))"  # Not a keyword argument of any factory: no clash with "lr".
CHAIN_LR_VALUE = 0.1

# Tolerance. Automatic differentiation is exact up to float64 roundoff, so |ad - fd| measures the error of
# the finite difference itself: truncation ~ h^2 |f'''| / 6, about 1e-10 relative for h = 1e-5 |x| and this
# smooth O(1) problem, plus roundoff ~ eps_machine |f| / h, i.e. ~2e-16 |f| / (h |f'|) relative. The
# largest measured relative error is 3.3e-7, on torch.nadam's momentum_decay: its derivative is only 1.5e-3
# and its step h = 1e-6, so roundoff dominates; every other derivative agrees to 2e-8 or better. A wrong
# derivative (a dropped term, a wrong 0/0 branch) is off by orders of magnitude more than 1e-6. The floor
# 1e-8 only keeps a derivative that is legitimately 0 from dividing by 0; every derivative here is >= 1e-3.
RTOL = 1e-6
FLOOR = 1e-8
PARAMS_STEP = 1e-5  # h along DIRECTION, with |DIRECTION| ~ 1 and parameters ~ 1.


def _tree(numpy_tree):
    return jax.tree.map(jnp.asarray, numpy_tree)


def _train_grad(w):
    """The gradient of the training loss ``sum(a * phi(w))``: ``a * (w - 0.3 sin(3 w))``, exactly 0 where a = 0."""
    return jax.tree.map(lambda a, x: a * (x - 0.3 * jnp.sin(3 * x)), _tree(TRAIN_WEIGHTS), w)


def _objective(w):
    terms = jax.tree.map(lambda b, x, c: jnp.sum(b * (x - c) ** 2), _tree(OBJECTIVE_WEIGHTS), w, _tree(TARGET))
    return sum(jax.tree.leaves(terms))


def _loss_after_steps(tx, params, steps=K):
    def step(carry, _):
        params, state = carry
        updates, state = tx.update(_train_grad(params), state, params)  # params: weight decay needs them.
        return (optax.apply_updates(params, updates), state), None

    # One compiled step, looped (an unrolled Python loop would compile, and differentiate, K copies).
    params, _ = jax.lax.scan(step, (params, tx.init(params)), length=steps)[0]
    return _objective(params)


def _names(entry: Entry) -> tuple[str, ...]:
    """What gets differentiated: the entry's learning rates and decays, and a block's chained rate."""
    return tuple(entry.decays) + ((CHAIN_LR,) if entry.block else ())


def _initial_values(entry: Entry) -> dict[str, jax.Array]:
    values = {**entry.kwargs, **entry.zero_eps, CHAIN_LR: CHAIN_LR_VALUE}
    return {name: jnp.asarray(float(values[name]), jnp.float64) for name in _names(entry)}


def _final_loss(entry: Entry, values: dict[str, jax.Array], step: jax.Array, smooth: bool = False) -> jax.Array:
    """The objective after K steps from ``PARAMS + step * DIRECTION``, the transformation built from ``values``
    (traced under ``jax.grad``), eps and the squared accumulators' initial values 0 (``entry.zero_eps``)."""
    hyperparameters = {name: value for name, value in values.items() if name != CHAIN_LR}
    tx = entry.make(**{**entry.kwargs, **entry.zero_eps, **(entry.smooth if smooth else {}), **hyperparameters})
    if entry.block:
        tx = optax.chain(tx, optax.scale(-values[CHAIN_LR]))
    params = jax.tree.map(lambda p, d: p + step * d, _tree(PARAMS), _tree(DIRECTION))
    return _loss_after_steps(tx, params)


def _relative_error(ad: float, fd: float) -> float:
    return abs(ad - fd) / max(abs(fd), FLOOR)


def _central_difference(f, x: float, h: float) -> float:
    return (float(f(x + h)) - float(f(x - h))) / (2 * h)


_DERIVATIVES: dict[tuple[str, bool], dict[str, float]] = {}


def _derivatives(entry: Entry, smooth: bool) -> dict[str, float]:
    """The objective's derivatives with respect to each rate and decay and to the initial params (along
    DIRECTION), by one jitted ``jax.grad``; computed once per entry and setting, for both tests below."""
    key = (entry.name, smooth and bool(entry.smooth))  # Without overrides, smooth is the entry itself.
    if key not in _DERIVATIVES:
        with jax.enable_x64(True):
            final_loss = functools.partial(_final_loss, entry, smooth=key[1])
            zero = jnp.asarray(0.0, jnp.float64)
            grads, directional = jax.jit(jax.grad(final_loss, argnums=(0, 1)))(_initial_values(entry), zero)
        _DERIVATIVES[key] = {name: float(g) for name, g in grads.items()} | {"initial params": float(directional)}
    return _DERIVATIVES[key]


@registry
def test_gradient_after_three_steps_matches_finite_differences(entry):
    with jax.enable_x64(True):
        values = _initial_values(entry)
        zero = jnp.asarray(0.0, jnp.float64)
        loss = jax.jit(functools.partial(_final_loss, entry, smooth=True))
        ad = _derivatives(entry, smooth=True)
        assert all(np.isfinite(list(ad.values()))), f"{entry}: non-finite derivatives {ad}"

        fd = {}
        for name, value in values.items():
            x = float(value)
            fd[name] = _central_difference(
                lambda y, name=name: loss({**values, name: jnp.asarray(y, jnp.float64)}, zero),
                x,
                1e-5 * max(abs(x), 1e-2),
            )
        fd["initial params"] = _central_difference(
            lambda y: loss(values, jnp.asarray(y, jnp.float64)), 0.0, PARAMS_STEP
        )
        errors = {name: _relative_error(ad[name], fd[name]) for name in ad}
        assert max(errors.values()) <= RTOL, f"{entry}: AD {ad} vs FD {fd}, relative errors {errors}"


@registry
def test_gradient_is_not_trivially_zero(entry):
    # The comparison above passes trivially if the objective does not depend on what is differentiated
    # (both sides 0): the first rate or decay (the chained rate for a block without decays) must matter.
    name = _names(entry)[0]
    derivative = _derivatives(entry, smooth=False)[name]
    assert abs(derivative) > 1e-8, f"{entry}: d loss / d {name} = {derivative}"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda lr: atx.rmsprop(lr, eps=0.0), id="rmsprop-eps0"),
        pytest.param(lambda lr: atx.adagrad(lr, eps=0.0), id="adagrad-eps0"),
        pytest.param(atx.adam, id="adam-defaults"),
        pytest.param(tt.rmsprop, id="torch.rmsprop-defaults"),
        pytest.param(tt.adagrad, id="torch.adagrad-defaults"),
        pytest.param(tt.adam, id="torch.adam-defaults"),
    ],
)
def test_old_defect_grad_through_rmsprop_eps0_is_finite(make):
    # Two steps with a coordinate whose gradient is 0: the accumulator stays 0 there, and an unguarded
    # sqrt(0) (derivative inf) times a zero tangent gave a NaN derivative with respect to the learning rate.
    with jax.enable_x64(True):
        lr = 0.05
        params = _tree(PARAMS)

        def loss(rate):
            return _loss_after_steps(make(rate), params, steps=2)

        ad = float(jax.grad(loss)(jnp.asarray(lr, jnp.float64)))
        fd = _central_difference(jax.jit(loss), lr, 1e-5 * lr)
        assert np.isfinite(ad), f"d loss / d lr = {ad}"
        assert _relative_error(ad, fd) <= RTOL, (ad, fd)
