"""Wilson et al. 2017, section 3.3: on a separable least-squares problem, full-batch AdaGrad, RMSprop and Adam
from w_0 = 0 converge to w = sign(X^T y) / 4, which labels every fresh test point +1, while gradient descent
converges to the minimum-norm solution, which labels them all correctly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx.problems import classification_error, separable_least_squares, separable_test_set
from tests.helpers import scan_steps

# The reference run (float64 NumPy): n = 50, p = 0.6, seed 0 gives 26 positives and 24 negatives.
N, P, SEED = 50, 0.6, 0


@pytest.fixture(scope="module")
def problem():
    return separable_least_squares(N, P, seed=SEED)


@pytest.fixture(scope="module")
def test_set():
    return separable_test_set(100_000, P, seed=1)


def test_construction_has_the_papers_structure(problem):
    x, y = problem
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == -1))
    assert (n_pos, n_neg) == (26, 24) and n_pos + n_neg == N
    assert x.dtype == np.float64 and y.dtype == np.float64
    # Three shared columns, then 1 own column per positive sample and 5 per negative one (zero columns dropped).
    assert x.shape == (N, 3 + n_pos + 5 * n_neg)
    np.testing.assert_array_equal(x[:, 0], y)
    np.testing.assert_array_equal(x[:, 1:3], 1.0)
    own = x[:, 3:]
    np.testing.assert_array_equal(own.sum(axis=1), np.where(y > 0, 1.0, 5.0))
    np.testing.assert_array_equal(np.count_nonzero(own, axis=0), 1)  # Each own column belongs to one sample.
    assert set(np.unique(x)) == {-1.0, 0.0, 1.0}
    # u = X^T y: u_1 = n, u_2 = u_3 = b > 0, and each own column carries its sample's label.
    u = x.T @ y
    b = float(np.sum(y))
    assert b > 0
    np.testing.assert_array_equal(u[:3], [N, b, b])
    assert np.all(u != 0)
    np.testing.assert_array_equal(x @ np.sign(u), 4 * y)  # The condition of the paper's lemma, with c = 4.


def test_construction_is_deterministic_and_checks_its_arguments():
    x, y = separable_least_squares(20, 0.7, seed=3)
    x_again, y_again = separable_least_squares(20, 0.7, seed=3)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    # A pitfall: n = 200, p = 0.51, seed 2 draws b = -2, where the lemma does not apply.
    with pytest.raises(ValueError, match=r"seed=2 draws 99 positive and 101 negative.*b = sum\(y\) > 0"):
        separable_least_squares(200, 0.51, seed=2)
    with pytest.raises(ValueError, match=r"p must be in \(0.5, 1\]"):
        separable_least_squares(50, 0.5)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        separable_least_squares(0)
    with pytest.raises(ValueError, match="n_test must be an integer >= 1"):
        separable_test_set(0)
    with pytest.raises(ValueError, match=r"need w \(d,\), x \(m, k <= d\)"):
        classification_error(np.zeros(2), np.zeros((4, 3)), np.zeros(4))


def test_test_set_and_error(test_set):
    x, y = test_set
    assert x.shape == (100_000, 3)
    np.testing.assert_array_equal(x, np.stack([y, np.ones_like(y), np.ones_like(y)], axis=1))
    # 1e5 Bernoulli(0.6) draws: the share of positives has sd sqrt(0.24 / 1e5) = 1.5e-3; 0.01 is 6 sd.
    assert abs(np.mean(y == 1) - P) < 0.01
    # A score of 0 counts as wrong; all-positive predictions err on exactly the negatives.
    assert classification_error(np.zeros(3), x, y) == 1.0
    assert classification_error(np.array([0.0, 1.0, 0.0, 7.0]), x, y) == np.mean(y == -1)


def test_minimum_norm_solution_has_the_closed_form(problem, test_set):
    x, y = problem
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == -1))
    # w = X^T alpha with alpha_i = alpha_+ or alpha_- by class (derived from x_i . x_k = y_i y_k + 2
    # and |x_i|^2 = 4 or 8).
    d = 8 * n_pos * n_neg + 15 * n_pos + 3 * n_neg + 5
    alpha = np.where(y > 0, (4 * n_neg + 5) / d, -(4 * n_pos + 1) / d)
    w_min_norm = np.linalg.pinv(x) @ y
    # Entries are O(1); pinv's SVD of a 50 x 149 matrix with condition number ~10 loses a few ulps.
    np.testing.assert_allclose(w_min_norm, x.T @ alpha, rtol=0, atol=1e-12)
    np.testing.assert_allclose(x @ w_min_norm, y, rtol=0, atol=1e-12)
    # It generalizes: <w, x_test> = y (n_+ alpha_+ - n_- alpha_-) + 2 (n_+ alpha_+ + n_- alpha_-).
    assert classification_error(w_min_norm, *test_set) == 0.0


def _full_batch(tx, x, y, steps):
    """``steps`` full-batch steps of ``tx`` on 0.5 |Xw - y|^2 from w_0 = 0, as one jitted scan (float64)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    grad = jax.grad(lambda w: 0.5 * jnp.sum((x @ w - y) ** 2))
    w, _ = scan_steps(tx, grad, jnp.zeros(x.shape[1], jnp.float64), steps)
    return np.asarray(w)


def test_gradient_descent_finds_the_minimum_norm_solution(problem, test_set):
    x, y = problem
    lipschitz = float(np.linalg.eigvalsh(x.T @ x).max())  # L = 103 here.
    with jax.enable_x64(True):
        # The residual lives in span{1_+, 1_-}, where X X^T / L has eigenvalues near 1: measured 22 steps to a
        # residual of 1e-6, 100 steps to float64 rounding.
        w = _full_batch(optax.sgd(1.0 / lipschitz), x, y, steps=100)
    assert np.linalg.norm(w - np.linalg.pinv(x) @ y) < 1e-6
    assert classification_error(w, x, y) == 0.0
    assert classification_error(w, *test_set) == 0.0
    # Far from the sign direction: the reference run's cos(w, sign u) is 0.318.
    s = np.sign(x.T @ y)
    np.testing.assert_allclose(w @ s / (np.linalg.norm(w) * np.linalg.norm(s)), 0.318, atol=1e-3)


@pytest.mark.parametrize(
    ("tx", "steps", "atol"),
    [
        # The reference run's settings (and a pitfall: AdaGrad <= 0.1, RMSprop and Adam <= 0.01 stay on the ray).
        # Steps measured: AdaGrad settles within 5e-4 of sign(u)/4 in ~50 steps; RMSprop reaches 1e-6 at
        # step 300, then circles it at 7.5e-4 (its step never decays); Adam is within 3e-9 after 1500.
        pytest.param(lambda: atx.adagrad(0.1), 100, 1e-3, id="adagrad-0.1"),
        pytest.param(lambda: atx.rmsprop(1e-3), 500, 2e-3, id="rmsprop-1e-3"),
        pytest.param(lambda: atx.adam(1e-3), 1500, 1e-6, id="adam-1e-3"),
    ],
)
def test_adaptive_methods_converge_to_the_sign_vector_and_misclassify_the_negatives(problem, test_set, tx, steps, atol):
    x, y = problem
    x_test, y_test = test_set
    with jax.enable_x64(True):
        w = _full_batch(tx(), x, y, steps)
    s = np.sign(x.T @ y)
    assert w @ s / (np.linalg.norm(w) * np.linalg.norm(s)) > 0.999
    # Not only the direction: the least-squares solution on that ray, X (s / 4) = y.
    np.testing.assert_allclose(w, s / 4, rtol=0, atol=atol)
    assert classification_error(w, x, y) == 0.0
    # w_1 + w_2 + w_3 > 0 and -w_1 + w_2 + w_3 > 0: every test point is labelled +1, so the error is the share
    # of negatives, 1 - p_hat, whatever p_hat the draw gives. The published computed reference is 0.3996.
    error = classification_error(w, x_test, y_test)
    p_hat = float(np.mean(y_test == 1))
    assert error == pytest.approx(1 - p_hat, abs=1e-12)
    assert error == pytest.approx(0.3996, abs=5e-5)
