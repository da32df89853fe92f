"""Against the real Optax: where our defaults coincide with Optax's, the numbers do too; where they differ,
the settings the README names ("Defaults versus Optax") close the gap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import max_relative_error, nested_params, run_steps


def _grad(params, t):
    return jax.tree.map(lambda w: 2 * w - 1 + jnp.asarray(t, w.dtype) / 7, params)


PAIRS = [
    ("adam", lambda: atx.adam(0.05), lambda: optax.adam(0.05)),
    ("adam-eps_root", lambda: atx.adam(0.05, b1=0.8, eps_root=1e-3), lambda: optax.adam(0.05, b1=0.8, eps_root=1e-3)),
    ("rmsprop", lambda: atx.rmsprop(0.01), lambda: optax.rmsprop(0.01)),
    (
        "rmsprop-initial_scale",
        lambda: atx.rmsprop(0.01, initial_scale=1.0),
        lambda: optax.rmsprop(0.01, initial_scale=1.0),
    ),
    ("adadelta", lambda: atx.adadelta(), lambda: optax.adadelta(1.0)),
    ("heavy-ball", lambda: atx.momentum(0.05, dampening=0.0), lambda: optax.sgd(0.05, momentum=0.9)),
    (
        "heavy-ball-nesterov",
        lambda: atx.momentum(0.05, dampening=0.0, nesterov=True),
        lambda: optax.sgd(0.05, momentum=0.9, nesterov=True),
    ),
    ("adagrad-optax-defaults", lambda: atx.adagrad(0.1, eps=1e-7, initial_accumulator=0.1), lambda: optax.adagrad(0.1)),
    # Knobs on the blocks.
    (
        "rms-centered-eps-outside",
        lambda: optax.chain(atx.scale_by_rms(decay=0.8, eps=0.1, centered=True, eps_in_sqrt=False), optax.scale(-0.01)),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=0.1, centered=True, eps_in_sqrt=False),
    ),
    (
        "rms-centered",
        lambda: optax.chain(atx.scale_by_rms(decay=0.8, eps=0.1, centered=True), optax.scale(-0.01)),
        lambda: optax.rmsprop(0.01, decay=0.8, eps=0.1, centered=True),
    ),
    (
        "nadam-psi-inf",
        lambda: optax.chain(
            atx.scale_by_nadam(b1=0.8, b2=0.9, eps=0.1, momentum_decay=float("inf")), optax.scale(-0.05)
        ),
        lambda: optax.nadam(0.05, b1=0.8, b2=0.9, eps=0.1),
    ),
    (
        "amsgrad-corrected",
        lambda: optax.chain(atx.scale_by_adam(b1=0.8, b2=0.9, eps=0.1, amsgrad="corrected"), optax.scale(-0.05)),
        lambda: optax.amsgrad(0.05, b1=0.8, b2=0.9, eps=0.1),
    ),
]


@pytest.mark.parametrize(("ours", "theirs"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_matches_optax(ours, theirs):
    with jax.enable_x64(True):
        params = nested_params(jnp.float64)
        actual, _ = run_steps(ours(), params, _grad, 30)
        with jax.numpy_dtype_promotion("standard"):  # optax.adam computes decay**count as float ** int32.
            expected, _ = run_steps(theirs(), params, _grad, 30)
    # The same equations in float64, in a different operation order: ~1e-15 per step.
    assert max_relative_error(actual[-1], jax.tree.map(np.asarray, expected[-1])) < 1e-12


def test_lecture_momentum_first_step_is_one_minus_beta_times_optax_sgd():
    g = jnp.array([1.0, -2.0])
    ours, theirs = atx.momentum(0.1), optax.sgd(0.1, momentum=0.9)
    u_ours, _ = ours.update(g, ours.init(g))
    u_theirs, _ = theirs.update(g, theirs.init(g))
    np.testing.assert_allclose(u_ours, (1 - 0.9) * u_theirs, rtol=1e-6)


def test_adadelta_with_default_learning_rate_descends():
    # optax.adadelta() (learning_rate=None) climbs from 14.0 to 19.9 here (reference/OPTAX.md); ours descends.
    f = lambda x: jnp.sum(x**2)  # noqa: E731
    w = jnp.array([1.0, 2.0, 3.0])
    trajectory, _ = run_steps(atx.adadelta(), w, lambda x, t: jax.grad(f)(x), 100)
    assert float(f(trajectory[-1])) < 0.9 * float(f(w))
