"""Each optimizer against its float64 NumPy oracle (tests/helpers.py), 50 steps on a nested pytree; and on
complex128 params against the same oracles in complex arithmetic (squares are |g|^2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import max_relative_error, nested_params, oracle_run, run_steps, with_oracle

STEPS = 50


def _gradient_fns(params):
    """g_t = w + G_t: the gradient of sum(w^2 / 2 + G_t . w), with a fixed random G_t per leaf and step
    (complex for complex params).

    Returns the same function twice: for jitted JAX (traced t) and for the NumPy oracle (integer t).
    """
    rng = np.random.default_rng(0)

    def draw(w):
        shape = (STEPS, *w.shape)
        return rng.normal(size=shape) + (1j * rng.normal(size=shape) if jnp.iscomplexobj(w) else 0)

    noise = jax.tree.map(draw, params)
    noise_jax = jax.tree.map(jnp.asarray, noise)
    return (
        lambda w, t: jax.tree.map(lambda x, n: x + n[t], w, noise_jax),
        lambda w, t: jax.tree.map(lambda x, n: x + n[t], w, noise),
    )


def _variants():
    """Each entry with an oracle: at its defaults (where it has them), its kwargs and each of its variants."""
    for entry in with_oracle:
        if entry.defaults is not None:
            yield pytest.param(entry, entry.defaults, id=f"{entry.name}-defaults")
        yield pytest.param(entry, entry.kwargs, id=entry.name)
        for i, kwargs in enumerate(entry.variants):
            yield pytest.param(entry, kwargs, id=f"{entry.name}-variant{i}")


def _params(dtype):
    real = nested_params(jnp.float64)
    if dtype == jnp.float64:
        return real

    # Complex params whose imaginary parts differ from their real parts.
    def complexify(w):
        w = np.asarray(w)
        return jnp.asarray(w + 1j * (0.7 - w[::-1] if w.ndim else 0.3), dtype)

    return jax.tree.map(complexify, real)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.complex128], ids=["float64", "complex128"])
@pytest.mark.parametrize(("entry", "kwargs"), list(_variants()))
def test_matches_float64_oracle(entry, kwargs, dtype):
    with jax.enable_x64(True):
        params = _params(dtype)
        grad_jax, grad_np = _gradient_fns(params)
        trajectory, _ = run_steps(entry.make(**kwargs), params, grad_jax, STEPS)
        expected = oracle_run(entry.oracle, kwargs, params, grad_np, STEPS)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(trajectory[-1]))
    # Both sides run the same float64 arithmetic in a different order (fused, one root instead of two for
    # Adadelta): differences are a few ulps per step, ~1e-14 after 50 steps. 1e-10 leaves room for that
    # and still catches any change to the equation (a wrong term moves w by >= 1e-4 within 50 steps).
    for t, (actual, oracle) in enumerate(zip(trajectory, expected, strict=True), start=1):
        error = max_relative_error(actual, oracle)
        assert error < 1e-10, f"step {t}: relative error {error:.3g}"
