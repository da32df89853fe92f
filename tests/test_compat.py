"""The compat layer's own numerics and contracts, without the frameworks: per-leaf clipnorm in low precision
and at zero, hyperparameters injected and traced, and builder calls whose knobs contradict each other.

The oracles are float64 NumPy; the frameworks themselves are compared in tests/test_parity.py.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx.compat.keras as kt
import adaptive_tx.compat.torch as tt
from adaptive_tx.compat import _build


def _clip(grads, max_norm):
    tx = _build.clip_by_norm(max_norm, per_leaf=True)
    updates, _ = tx.update(grads, tx.init(grads))
    return updates


def _clipped_np(g: np.ndarray, max_norm: float) -> np.ndarray:
    """Keras's per-variable clipnorm in float64: g * max_norm / max(||g||, max_norm), and 0 when both are 0."""
    g = np.asarray(g, np.float64)
    denominator = max(float(np.sqrt(np.sum(g * g))), max_norm)
    return np.zeros_like(g) if denominator == 0 else g * max_norm / denominator


# ----------------------------------------------------------------------------- clipnorm: precision


@pytest.mark.parametrize(
    ("dtype", "rtol"),
    [(jnp.float16, 2.0**-10), (jnp.bfloat16, 2.0**-7)],
    ids=["float16", "bfloat16"],
)
def test_clipnorm_of_a_large_low_precision_leaf_is_computed_wide(dtype, rtol):
    # sum(g * g) = 1.4e5 overflows float16 (max 65504): computed in float16 the norm is inf and the leaf 0.
    big = np.array([200.0, -150.0, 200.0, 100.0], np.float64)
    small = np.array([0.25, -0.5], np.float64)  # Norm 0.56 < 1: left as it is.
    grads = {"big": jnp.asarray(big, dtype), "small": jnp.asarray(small, dtype)}
    clipped = _clip(grads, 1.0)
    assert clipped["big"].dtype == dtype and clipped["small"].dtype == dtype
    # Expected: the float64 result rounded once to the leaf's dtype (rtol: one unit in the last place).
    np.testing.assert_allclose(np.asarray(clipped["big"], np.float64), _clipped_np(big, 1.0), rtol=rtol, atol=0)
    np.testing.assert_array_equal(np.asarray(clipped["small"], np.float64), small)


def test_clipnorm_of_a_float64_leaf_is_computed_in_float64():
    with jax.enable_x64(True):
        g = np.array([1.0 + 2.0**-40, -3.0, 7.5, 1e-9], np.float64)
        clipped = _clip([jnp.asarray(g)], 2.0)[0]
        assert clipped.dtype == jnp.float64
        # float32 arithmetic would be off by ~1e-7; float64 agrees to a few ulps.
        np.testing.assert_allclose(np.asarray(clipped), _clipped_np(g, 2.0), rtol=1e-15, atol=0)


def test_keras_clipnorm_steps_a_float16_model():
    # kt.sgd(clipnorm=1) on float16 params with gradients of 200: the step is -lr * g / ||g||, not 0.
    params = jnp.zeros(4, jnp.float16)
    grads = jnp.full(4, 200.0, jnp.float16)
    tx = kt.sgd(learning_rate=0.5, clipnorm=1.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates, np.float64), -0.5 * _clipped_np(np.full(4, 200.0), 1.0), rtol=2**-10)


# ----------------------------------------------------------------------------- clipnorm: at zero


@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_clipnorm_of_a_zero_leaf_is_zero(max_norm):
    # clipnorm=0 on an all-zero leaf was 0 * 0 / max(0, 0) = NaN.
    clipped = _clip({"zero": jnp.zeros((2, 3)), "nonzero": jnp.asarray([3.0, -4.0])}, max_norm)
    np.testing.assert_array_equal(np.asarray(clipped["zero"]), np.zeros((2, 3)))
    np.testing.assert_allclose(np.asarray(clipped["nonzero"]), _clipped_np(np.array([3.0, -4.0]), max_norm), rtol=1e-7)
    if max_norm == 0:  # Clipped to norm 0, every leaf is exactly 0.
        np.testing.assert_array_equal(np.asarray(clipped["nonzero"]), np.zeros(2))


def test_keras_clipnorm_zero_gives_a_zero_step():
    params = [jnp.zeros(3), jnp.ones(2)]
    grads = [jnp.zeros(3), jnp.asarray([0.5, -2.0])]
    tx = kt.sgd(learning_rate=0.1, clipnorm=0.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    for u in updates:
        np.testing.assert_array_equal(np.asarray(u), np.zeros(u.shape))


def _clip_jacobian_np(g: np.ndarray, max_norm: float) -> np.ndarray:
    """d clip(g) / d g in float64, where the norm is not at the threshold."""
    g = np.asarray(g, np.float64)
    norm = float(np.sqrt(np.sum(g * g)))
    if max_norm == 0:
        return np.zeros((g.size, g.size))  # clip(g) = 0 for every g.
    if norm < max_norm:
        return np.eye(g.size)
    return max_norm / norm * (np.eye(g.size) - np.outer(g, g) / norm**2)


@pytest.mark.parametrize(
    "g",
    [np.zeros(3), np.array([0.1, -0.2, 0.3]), np.array([3.0, -4.0, 12.0])],
    ids=["zero", "inside", "clipped"],
)
@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_clipnorm_gradient_is_finite_and_right(g, max_norm):
    # The gradient of <w, clip(g)> with respect to g. At a zero leaf the old code took sqrt'(0) = inf
    # times 0 and gave NaN; a guard on sqrt's output alone would still leak the NaN through its input.
    w = np.array([0.7, -1.3, 2.0])

    def f(x):
        return jnp.sum(jnp.asarray(w, jnp.float32) * _clip({"x": x}, max_norm)["x"])

    grad = np.asarray(jax.grad(f)(jnp.asarray(g, jnp.float32)), np.float64)
    np.testing.assert_allclose(grad, _clip_jacobian_np(g, max_norm).T @ w, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- injected hyperparameters


INJECTED = [
    pytest.param(tt.sgd, dict(lr=0.1, momentum=0.9, nesterov=True), id="torch-sgd-nesterov"),
    pytest.param(tt.sgd, dict(lr=0.1, momentum=0.8, dampening=0.2, weight_decay=0.1), id="torch-sgd-dampening"),
    pytest.param(tt.adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1), id="torch-adagrad"),
    pytest.param(tt.adamw, dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.3), id="torch-adamw"),
    pytest.param(tt.rmsprop, dict(lr=0.01, momentum=0.9, centered=True), id="torch-rmsprop"),
    pytest.param(kt.sgd, dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.1), id="keras-sgd"),
    pytest.param(kt.rmsprop, dict(momentum=0.9, weight_decay=0.1, clipnorm=1.0), id="keras-rmsprop-clipnorm"),
    pytest.param(kt.adam, dict(learning_rate=0.05, global_clipnorm=0.5), id="keras-adam-global-clipnorm"),
]


def _trajectory(tx: optax.GradientTransformation, steps: int = 5) -> list[np.ndarray]:
    params = {"w": jnp.asarray([0.5, -1.0, 2.0]), "b": jnp.asarray([[0.3, 0.0], [-0.7, 1.5]])}
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for _ in range(steps):
        grads = jax.tree.map(lambda p: 1.5 * p + jnp.cos(3 * p) - 0.3, params)
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(np.asarray(p)) for p in jax.tree.leaves(params)]))
    return out


@pytest.mark.parametrize(("factory", "kwargs"), INJECTED)
def test_injected_hyperparameters_jit_and_match_the_plain_optimizer(factory, kwargs):
    # inject_hyperparams turns every numeric argument into a traced array inside the jitted update; the
    # compat functions may check them only when they are Python numbers.
    injected = _trajectory(optax.inject_hyperparams(factory)(**kwargs))
    plain = _trajectory(factory(**kwargs))
    for a, b in zip(injected, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_torch_sgd_checks_nesterov_on_the_numbers_it_has():
    # Python numbers are checked even when another argument is an array (which passes unchecked).
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        tt.sgd(momentum=jnp.asarray(0.9), dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        tt.sgd(momentum=0.0, dampening=jnp.asarray(0.0), nesterov=True)


def test_keras_unsupported_option_raises_when_injected_and_traced():
    # use_ema=1 is truthy for Keras, and traced under a jitted init: still the unsupported-option error.
    tx = optax.inject_hyperparams(kt.adam)(use_ema=1)
    with pytest.raises(ValueError, match=r"^use_ema=.* is not supported"):
        jax.jit(tx.init)({"w": jnp.ones(2)})


# ----------------------------------------------------------------------------- contradictory knobs


def test_lr_in_buffer_without_momentum_raises():
    with pytest.raises(ValueError, match="lr_in_buffer"):
        _build._compose(None, 0.1, around=_build.Around(lr_in_buffer=True))
    with pytest.raises(ValueError, match="lr_in_buffer"):
        _build.sgd(
            0.1,
            momentum=0.0,
            dampening=0.0,
            nesterov=False,
            first_step_undampened=False,
            around=_build.Around(lr_in_buffer=True),
        )
    with pytest.raises(ValueError, match="lr_in_buffer"):
        _build.rmsprop(
            0.1,
            decay=0.9,
            eps=1e-7,
            eps_in_sqrt=True,
            centered=False,
            momentum=0,
            around=_build.Around(lr_in_buffer=True),
        )


def test_decoupled_without_weight_decay_raises():
    with pytest.raises(ValueError, match="decoupled"):
        _build._compose(None, 0.1, around=_build.Around(decoupled=True))
    with pytest.raises(ValueError, match="decoupled"):
        _build._compose(None, 0.1, around=_build.Around(weight_decay=0, decoupled=True))
    with pytest.raises(ValueError, match="decoupled"):
        _build.adam(0.1, b1=0.9, b2=0.999, eps=1e-8, eps_hat=False, amsgrad=None, around=_build.Around(decoupled=True))


def _first_update(tx: optax.GradientTransformation, g: np.ndarray, p: np.ndarray) -> np.ndarray:
    updates, _ = tx.update(jnp.asarray(g, jnp.float32), tx.init(jnp.asarray(p, jnp.float32)), jnp.asarray(p))
    return np.asarray(updates, np.float64)


G = np.array([0.5, -2.0, 1e-3])
P = np.array([1.0, 0.5, -0.25])


def _torch_nadam_first_step(*, lr: float, b1: float, eps: float, psi: float) -> np.ndarray:
    """torch.optim.NAdam's first update on gradient G, written out: m_1 = (1 - b1) g, v_1-hat = g^2."""
    mu1, mu2 = b1 * (1 - 0.5 * 0.96**psi), b1 * (1 - 0.5 * 0.96 ** (2 * psi))
    m1, denominator = (1 - b1) * G, np.abs(G) + eps
    return -lr * (G + mu2 / (1 - mu1 * mu2) * m1) / denominator  # (1 - mu_1) g / (1 - mu_1) = g.


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        # Keras SGD and RMSprop without momentum: lr_in_buffer has nothing to act on.
        pytest.param(lambda: kt.sgd(), -0.01 * G, id="keras-sgd"),
        pytest.param(lambda: kt.sgd(momentum=0.0, nesterov=True), -0.01 * G, id="keras-sgd-nesterov-no-momentum"),
        pytest.param(lambda: kt.rmsprop(), -1e-3 * G / np.sqrt(0.1 * G**2 + 1e-7), id="keras-rmsprop"),
        # A weight decay of 0: decoupled or not, no decay.
        pytest.param(
            lambda: kt.adam(weight_decay=0.0), -1e-3 * G / (np.abs(G) + 1e-7 / np.sqrt(1e-3)), id="keras-adam-wd0"
        ),
        pytest.param(
            lambda: kt.adamw(weight_decay=0), -1e-3 * G / (np.abs(G) + 1e-7 / np.sqrt(1e-3)), id="keras-adamw-wd0"
        ),
        pytest.param(lambda: tt.adamw(weight_decay=0), -1e-3 * G / (np.abs(G) + 1e-8), id="torch-adamw-wd0"),
        pytest.param(
            lambda: tt.nadam(weight_decay=0.0, decoupled_weight_decay=True),
            _torch_nadam_first_step(lr=2e-3, b1=0.9, eps=1e-8, psi=4e-3),
            id="torch-nadam-wd0-decoupled",
        ),
    ],
)
def test_compat_functions_still_build_where_a_knob_has_nothing_to_act_on(factory, expected):
    # The compat functions pass lr_in_buffer only with a momentum and decoupled only with a weight decay;
    # their first step is the textbook one (float64 NumPy).
    np.testing.assert_allclose(_first_update(factory(), G, P), expected, rtol=1e-5)


def test_torch_adagrad_lr_decay_injected_in_float32_under_x64():
    # An injected float32 lr_decay beside float64 params used to meet a float64 count: a strict-promotion
    # error. The rate is lr / (1 + t * lr_decay), t = 0, 1, ...
    with jax.enable_x64(True):
        tx = optax.inject_hyperparams(tt.adagrad, hyperparam_dtype=jnp.float32)(lr=0.1, lr_decay=0.5)
        params = jnp.ones(2, jnp.float64)
        state = tx.init(params)
        steps = []
        for _ in range(3):
            updates, state = jax.jit(tx.update)(jnp.ones(2, jnp.float64), state, params)
            steps.append(float(-updates[0]))
    # AdaGrad on a constant unit gradient divides by sqrt(t + 1) (+ eps 1e-10 outside the root).
    expected = [0.1 / (1 + t * 0.5) / (np.sqrt(t + 1) + 1e-10) for t in range(3)]
    np.testing.assert_allclose(steps, expected, rtol=1e-6)  # float32 hyperparameters: float32 rounding.
