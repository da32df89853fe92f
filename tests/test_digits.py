"""The digits benchmark: the split, the network, its loss against NumPy, and what training reaches."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from adaptive_tx import digits

pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return digits.load(0)


def test_load_is_a_deterministic_shuffled_1437_360_split(data):
    assert [a.shape for a in data] == [(1437, 64), (1437,), (360, 64), (360,)]
    assert [a.dtype for a in data] == [np.float32, np.int32, np.float32, np.int32]
    again = digits.load(0)
    for a, b in zip(data, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(digits.load(1).y_test, data.y_test)  # The seed chooses the split.
    # Pixels are 0..16 in the raw data, so X / 16 spans exactly [0, 1] in steps of 1/16.
    x = np.concatenate([data.x_train, data.x_test])
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.round(x * 16))
    # Ten classes of 174..183 images each, all ten on both sides of the split. Not stratified: the test set
    # holds 27 to 44 of each (20% of a class would be 36), as a shuffle gives.
    train_counts, test_counts = np.bincount(data.y_train, minlength=10), np.bincount(data.y_test, minlength=10)
    total = train_counts + test_counts
    assert len(total) == 10 and total.min() >= 174 and total.max() <= 183 and total.sum() == 1797
    assert test_counts.min() == 27 and test_counts.max() == 44
    # The two halves together are the whole data set: no image lost, none duplicated by the split.
    from sklearn.datasets import load_digits

    full_x, full_y = load_digits(return_X_y=True)
    joined = np.concatenate([np.c_[data.x_train * 16, data.y_train], np.c_[data.x_test * 16, data.y_test]])
    np.testing.assert_array_equal(np.unique(joined, axis=0), np.unique(np.c_[full_x, full_y], axis=0))


def test_load_without_sklearn_names_the_extra(monkeypatch):
    for name in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, name, None)  # `import sklearn...` now raises ImportError.
    with pytest.raises(ImportError, match=r'needs scikit-learn: pip install "adaptive_tx\[notebooks\]"'):
        digits.load()


def test_importing_the_module_and_the_command_loads_no_optional_dependency():
    code = (
        "import sys; import adaptive_tx, adaptive_tx.digits, adaptive_tx.cli; "
        "print(sorted(m for m in ('sklearn', 'tqdm', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_he_init_has_the_right_spread_and_zero_biases():
    params = digits.init_mlp(jax.random.key(0))
    assert [(p["w"].shape, p["b"].shape) for p in params] == [
        ((64, 500), (500,)),
        ((500, 300), (300,)),
        ((300, 10), (10,)),
    ]
    for layer in params:
        w, b = np.asarray(layer["w"], np.float64), np.asarray(layer["b"])
        assert layer["w"].dtype == layer["b"].dtype == np.float32
        np.testing.assert_array_equal(b, 0.0)
        n = w.size
        sigma = np.sqrt(2 / w.shape[0])
        # n iid normal draws: the sample std has relative standard error 1/sqrt(2n) (1.3% for the 300 x 10
        # layer), the sample mean an absolute one of sigma/sqrt(n). Five standard errors each: a wrong
        # fan (fan_out, or the average of both) is off by 20% or more on every layer.
        assert abs(w.std() / sigma - 1) < 5 / np.sqrt(2 * n)
        assert abs(w.mean()) < 5 * sigma / np.sqrt(n)
    np.testing.assert_array_equal(params[0]["w"], digits.init_mlp(jax.random.key(0))[0]["w"])
    assert not np.array_equal(params[0]["w"], digits.init_mlp(jax.random.key(1))[0]["w"])


def _numpy_forward(params, x):
    """An independent float64 transcription of the network: ReLU layers, then an affine output layer."""
    h = np.asarray(x, np.float64)
    layers = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
    for layer in layers[:-1]:
        h = np.maximum(h @ layer["w"] + layer["b"], 0.0)
    return h @ layers[-1]["w"] + layers[-1]["b"]


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_loss_and_accuracy_match_float64_numpy(data, scale):
    # scale = 30 makes the logits O(100): a log-softmax that does not subtract the max would overflow.
    params = digits.init_mlp(jax.random.key(3))
    params[-1] = {"w": params[-1]["w"] * np.float32(scale), "b": params[-1]["b"] + np.float32(0.5)}
    x, y = data.x_test[:60], data.y_test[:60]
    z = _numpy_forward(params, x)
    m = z.max(axis=1)
    log_sum_exp = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
    expected = np.mean(log_sum_exp - z[np.arange(len(y)), y])
    # float32 matmuls over at most 500 terms: relative rounding of order sqrt(500) * 6e-8 = 1.3e-6 per layer
    # (3e-7 measured on the logits); 1e-5 leaves a margin for the three layers and the log-sum-exp.
    np.testing.assert_allclose(np.asarray(digits.mlp(params, x)), z, rtol=0, atol=1e-5 * np.abs(z).max())
    np.testing.assert_allclose(float(digits.loss(params, x, y)), expected, rtol=1e-5)
    assert float(digits.accuracy(params, x, y)) * 60 == pytest.approx(np.sum(np.argmax(z, axis=1) == y), abs=1e-4)
    # Labels that agree with NumPy's argmax on 45 of the 60 points and miss it by one class on the rest.
    hits = np.argmax(z, axis=1).astype(np.int32)
    hits[45:] = (hits[45:] + 1) % 10
    assert float(digits.accuracy(params, x, hits)) == pytest.approx(0.75, abs=1e-6)  # A float32 mean.


def test_adam_learns_the_digits_and_the_history_starts_at_the_initial_weights(data):
    history = digits.train(atx.adam(1e-3), data, epochs=3)
    for metric in history[:4]:
        assert metric.shape == (4,) and metric.dtype == np.float32
    # Epoch 0 is the network before any step: the weights init_mlp draws from the seed's first key.
    init = digits.init_mlp(jax.random.split(jax.random.key(0))[0])
    np.testing.assert_allclose(history.train_loss[0], float(digits.loss(init, data.x_train, data.y_train)), rtol=1e-6)
    assert history.test_accuracy[0] == float(digits.accuracy(init, data.x_test, data.y_test))
    # The anchor: a 64-500-300-10 MLP on this split reaches 1-4% test error after 6 epochs with tuned
    # optimizers; Adam at its default rate is past 96% after 3 (measured 0.964), so 0.9 is a wide margin.
    assert history.test_accuracy[-1] > 0.9
    assert history.train_accuracy[-1] > 0.9
    assert history.train_loss[-1] < history.train_loss[0] / 10
    # The returned params are the last epoch's.
    assert (
        abs(float(digits.accuracy(history.params, data.x_test, data.y_test)) - history.test_accuracy[-1]) < 1.01 / 360
    )


def test_same_seed_gives_bit_identical_histories_with_or_without_a_progress_bar(data, capsys):
    seen = []

    def progress(epochs):  # A tqdm-like callable: it gets the epochs' range and is iterated.
        seen.append(list(epochs))
        return epochs

    # A narrower network than the default, to run faster; the code path is the same.
    def run(seed, progress):
        tx = atx.adadelta(1.0, rho=0.95, eps=1e-6)
        return digits.train(tx, data, epochs=2, seed=seed, sizes=(64, 64, 10), progress=progress)

    first, second = run(7, progress), run(7, True)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        np.testing.assert_array_equal(a, b)
    assert seen == [[0, 1]]
    err = capsys.readouterr().err  # progress=True: a tqdm bar on stderr.
    assert "train: 100%" in err and "2/2" in err and "test_acc=" in err
    # Control: another seed starts from other weights (epochs=0 compiles no epoch).
    other = digits.train(optax.sgd(0.1), data, epochs=0, seed=8, sizes=(64, 64, 10))
    assert other.train_loss.shape == (1,) and other.train_loss[0] != first.train_loss[0]


def test_grid_run_equals_the_single_run_with_that_value(data):
    grid = {"rho": [0.9, 0.95], "eps": [1e-6, 1e-4]}  # Lists of numbers become float32 arrays.
    runs = digits.train_grid(lambda v: atx.adadelta(1.0, rho=v["rho"], eps=v["eps"]), grid, data, epochs=2)
    assert runs.test_accuracy.shape == (2, 3)
    np.testing.assert_array_equal(runs.train_loss[0, 0], runs.train_loss[1, 0])  # The same initial weights.
    assert jax.tree.leaves(runs.params)[0].shape[0] == 2
    single = digits.train(atx.adadelta(1.0, rho=0.95, eps=1e-4), data, epochs=2)
    # The grid's matrix products are batched, so they sum in another order: float32 rounding (6e-8) per
    # operation, which the 28 steps grew to 2.4e-6 relative in the losses and 1e-6 in the params here (the
    # same test on another split of the data: 1.4e-7). 1e-3 leaves room for other CPUs and thread counts
    # and is still ten times below a real difference: the other grid value is 1e-2 away or more.
    for field in ("train_loss", "test_loss"):
        np.testing.assert_allclose(getattr(runs, field)[1], getattr(single, field), rtol=1e-3)
        assert np.max(np.abs(getattr(runs, field)[0] / getattr(single, field) - 1)) > 1e-2
    # An accuracy can move by one image (1/360) only if two of its logits are within that rounding.
    for field, n in (("train_accuracy", 1437), ("test_accuracy", 360)):
        np.testing.assert_allclose(getattr(runs, field)[1], getattr(single, field), rtol=0, atol=1.01 / n)
    for a, b in zip(jax.tree.leaves(runs.params), jax.tree.leaves(single.params), strict=True):
        np.testing.assert_allclose(a[1], b, rtol=0, atol=1e-3 * float(np.abs(b).max()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": -1}, "epochs must be an integer >= 0"),
        ({"batch_size": 0}, r"batch_size must be an integer in \[1, 1437\]"),
        ({"batch_size": 1438}, r"batch_size must be an integer in \[1, 1437\]"),
    ],
)
def test_bad_training_arguments_raise(data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits.train(optax.sgd(0.1), data, **kwargs)


def test_grid_values_need_one_shared_leading_axis(data):
    with pytest.raises(ValueError, match="one shared, non-empty leading"):
        digits.train_grid(lambda v: optax.sgd(v["a"]), {"a": np.ones(2), "b": np.ones(3)}, data)
    with pytest.raises(ValueError, match="one shared, non-empty leading"):
        digits.train_grid(optax.sgd, 0.1, data)
    with pytest.raises(ValueError, match="one shared, non-empty leading"):
        digits.train_grid(optax.sgd, [], data)
