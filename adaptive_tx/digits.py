"""A small image-classification benchmark: an MLP on scikit-learn's 8x8 digits, trained in a few seconds on CPU.

The CPU analogue of Zeiler's MNIST experiments (ADADELTA, 2012, section 4.1): a 64-500-300-10 ReLU network,
minibatches of 100, 1437 training and 360 test images. ``load`` needs scikit-learn (``pip install
"adaptive_tx[notebooks]"``); everything else is JAX and Optax, so the core package imports without it.

One epoch is one jitted ``lax.scan`` over its minibatches, so after the first compile an epoch takes
milliseconds. ``train`` runs one optimizer; ``train_grid`` runs a whole grid of hyperparameter values in one
compile, ``jax.vmap`` over the values, from the same initial weights and the same minibatch order.

Examples:
  A grid over Adadelta's ``(rho, eps)``, and a learning-rate sweep, each compiled once::

    import numpy as np
    import optax
    import adaptive_tx as atx
    from adaptive_tx import digits

    data = digits.load(seed=0)
    rho, eps = np.meshgrid([0.9, 0.95, 0.99], [1e-2, 1e-4, 1e-6, 1e-8])
    grid = {"rho": rho.ravel(), "eps": eps.ravel()}  # 12 runs
    history = digits.train_grid(lambda v: atx.adadelta(1.0, rho=v["rho"], eps=v["eps"]), grid, data)
    print(1 - history.test_accuracy[:, -1])  # test error of each run after 6 epochs

    sweep = digits.train_grid(optax.sgd, np.array([1.0, 0.1, 0.01, 0.001]), data)
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

__all__ = ("Digits", "History", "accuracy", "init_mlp", "load", "loss", "mlp", "train", "train_grid")

Params = list[dict[str, jax.Array]]
Progress = bool | Callable[[Iterable[int]], Iterable[int]] | None

SIZES = (64, 500, 300, 10)
N_TEST = 360  # 1797 images: 1437 to train on, 360 to test on.


class Digits(NamedTuple):
    """The digits split: images as float32 rows of 64 pixels in [0, 1], labels as int32 in 0..9."""

    x_train: np.ndarray  # (1437, 64) float32
    y_train: np.ndarray  # (1437,) int32
    x_test: np.ndarray  # (360, 64) float32
    y_test: np.ndarray  # (360,) int32


class History(NamedTuple):
    """What :func:`train` records: per-epoch metrics, index 0 before the first step, and the final params.

    Each metric has shape ``(epochs + 1,)``; :func:`train_grid` adds a leading grid axis to every field,
    params included. The training metrics are measured on the whole training set after each epoch, with
    the epoch's final params (not averaged over the epoch's minibatches).
    """

    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    params: Params


def load(seed: int = 0) -> Digits:
    """scikit-learn's 1797 digits, scaled to [0, 1] and shuffled into 1437 training and 360 test images.

    The split is ``sklearn.model_selection.train_test_split`` with ``random_state=seed``, not stratified: each
    class keeps roughly its share (27 to 44 test images per class for seed 0).

    Args:
      seed: the split's random state; the same seed gives the same split.

    Returns:
      A :class:`Digits` of NumPy arrays: ``x`` is ``X / 16`` in float32, ``y`` the labels in int32.

    Raises:
      ImportError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # The core package does not depend on scikit-learn.
        raise ImportError('adaptive_tx.digits.load needs scikit-learn: pip install "adaptive_tx[notebooks]"') from err
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=N_TEST, random_state=seed)
    return Digits(
        (x_train / 16).astype(np.float32),
        y_train.astype(np.int32),
        (x_test / 16).astype(np.float32),
        y_test.astype(np.int32),
    )


def init_mlp(key: jax.Array, sizes: Sequence[int] = SIZES) -> Params:
    """He-normal weights and zero biases for an MLP with layer widths ``sizes``.

    Every weight is drawn from :math:`\\mathcal{N}(0, 2 / n_\\text{in})` (He et al., 2015), which keeps the
    variance of ReLU activations constant from layer to layer.

    Args:
      key: a JAX PRNG key.
      sizes: the widths ``(inputs, hidden..., outputs)``; default ``(64, 500, 300, 10)``.

    Returns:
      A list with one ``{"w": (n_in, n_out), "b": (n_out,)}`` dict of float32 arrays per layer.

    Examples:
      >>> import jax
      >>> params = init_mlp(jax.random.key(0), (4, 3, 2))
      >>> [(p["w"].shape, p["b"].shape) for p in params]
      [((4, 3), (3,)), ((3, 2), (2,))]
    """
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (n_in, n_out), jnp.float32) * np.float32(np.sqrt(2 / n_in)),
            "b": jnp.zeros(n_out, jnp.float32),
        }
        for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params: Params, x: ArrayLike) -> jax.Array:
    """The network's logits: affine layers with ReLU between them, none after the last.

    Args:
      params: from :func:`init_mlp`.
      x: inputs, shape ``(batch, sizes[0])``.

    Returns:
      Logits, shape ``(batch, sizes[-1])``.
    """
    h = jnp.asarray(x)
    for layer in params[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"][None, :])
    return h @ params[-1]["w"] + params[-1]["b"][None, :]


def loss(params: Params, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Mean softmax cross-entropy of the network's logits against integer labels.

    Args:
      params: from :func:`init_mlp`.
      x: inputs, shape ``(batch, sizes[0])``.
      y: integer labels, shape ``(batch,)``.

    Returns:
      A scalar.
    """
    return optax.losses.softmax_cross_entropy_with_integer_labels(mlp(params, x), y).mean()


def accuracy(params: Params, x: ArrayLike, y: ArrayLike) -> jax.Array:
    """Fraction of ``x`` whose largest logit is at its label.

    Args:
      params: from :func:`init_mlp`.
      x: inputs, shape ``(batch, sizes[0])``.
      y: integer labels, shape ``(batch,)``.

    Returns:
      A float32 scalar in [0, 1].
    """
    return jnp.mean(jnp.argmax(mlp(params, x), axis=-1) == y, dtype=jnp.float32)


def _metrics(params: Params, data: Sequence[jax.Array]) -> jax.Array:
    """train loss, train accuracy, test loss, test accuracy, as one float32 array of shape (4,)."""
    x_train, y_train, x_test, y_test = data
    return jnp.stack(
        [
            loss(params, x_train, y_train),
            accuracy(params, x_train, y_train),
            loss(params, x_test, y_test),
            accuracy(params, x_test, y_test),
        ]
    )


# Module-level, so that the compiled metrics are reused across runs of the same network.
_metrics_jit = jax.jit(_metrics)
_batched_metrics_jit = jax.jit(jax.vmap(_metrics, in_axes=(0, None)))


def _epoch(make_tx: Callable[[Any], optax.GradientTransformation], batch_size: int):
    """One epoch, ``(value, params, opt_state, key, data) -> (params, opt_state, metrics)``, unjitted."""

    def epoch(value, params, opt_state, key, data):
        tx = make_tx(value)
        x, y = data[0], data[1]
        n_batches = x.shape[0] // batch_size
        order = jax.random.permutation(key, x.shape[0])[: n_batches * batch_size].reshape(n_batches, batch_size)

        def step(carry, batch):
            params, opt_state = carry
            grads = jax.grad(loss)(params, x[batch], y[batch])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, _metrics(params, data)

    return epoch


def _progress_bar(progress: Progress) -> Callable[[Iterable[int]], Iterable[int]] | None:
    if progress is None or progress is False:
        return None
    if progress is True:
        try:
            from tqdm import tqdm
        except ImportError as err:
            raise ImportError('progress=True needs tqdm: pip install "adaptive_tx[notebooks]"') from err
        return functools.partial(tqdm, desc="train", unit="epoch")
    return progress


def _run(
    make_tx: Callable[[Any], optax.GradientTransformation],
    values: Any,
    batched: bool,
    data: Digits,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    sizes: Sequence[int],
    progress: Progress,
) -> History:
    """What :func:`train` and :func:`train_grid` share; ``batched`` vmaps over ``values``' leading axis."""
    if not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    x_train, y_train, x_test, y_test = data
    arrays = (
        jnp.asarray(x_train, jnp.float32),
        jnp.asarray(y_train, jnp.int32),
        jnp.asarray(x_test, jnp.float32),
        jnp.asarray(y_test, jnp.int32),
    )
    n_train = arrays[0].shape[0]
    if not isinstance(batch_size, numbers.Integral) or not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must be an integer in [1, {n_train}], got {batch_size!r}")
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    params = init_mlp(init_key, sizes)

    def init(value, params):
        return make_tx(value).init(params)

    epoch = _epoch(make_tx, batch_size)
    metrics = _metrics_jit
    if batched:
        n = len(jax.tree.leaves(values)[0])
        params = jax.tree.map(lambda p: jnp.broadcast_to(p, (n, *p.shape)), params)
        init = jax.vmap(init, in_axes=(0, 0))
        epoch = jax.vmap(epoch, in_axes=(0, 0, 0, None, None))
        metrics = _batched_metrics_jit
    opt_state = jax.jit(init)(values, params)
    epoch = jax.jit(epoch)
    history = [np.asarray(metrics(params, arrays))]
    bar = _progress_bar(progress)
    epochs_iter: Iterable[int] = range(epochs) if bar is None else bar(range(epochs))
    for e in epochs_iter:
        params, opt_state, m = epoch(values, params, opt_state, jax.random.fold_in(shuffle_key, e), arrays)
        history.append(np.asarray(m))  # Waits for the epoch, so a progress bar shows real time.
        if hasattr(epochs_iter, "set_postfix"):  # For a grid, the best run's.
            epochs_iter.set_postfix(loss=f"{np.min(m[..., 0]):.3g}", test_acc=f"{np.max(m[..., 3]):.4f}")
    stacked = np.stack(history, axis=-2)  # (..., epochs + 1, 4)
    return History(stacked[..., 0], stacked[..., 1], stacked[..., 2], stacked[..., 3], params)


def train(
    tx: optax.GradientTransformation,
    data: Digits,
    *,
    epochs: int = 6,
    batch_size: int = 100,
    seed: int = 0,
    sizes: Sequence[int] = SIZES,
    progress: Progress = None,
) -> History:
    """Train the MLP with ``tx`` on minibatches of ``data``, recording the metrics after every epoch.

    The initial weights come from ``seed``, and so does each epoch's shuffle of the training set (a new
    permutation per epoch). An epoch takes ``len(x_train) // batch_size`` full minibatches; the remaining
    images (37 of 1437 with the defaults) are left out of that epoch only, so every step sees a batch of
    the same size. One epoch is one jitted ``lax.scan``; the same arguments give bit-identical results.

    Args:
      tx: the optimizer.
      data: a :class:`Digits` (from :func:`load`) or any ``(x_train, y_train, x_test, y_test)``.
      epochs: passes over the training set (default 6, as in Zeiler's Tables 1 and 2).
      batch_size: images per step (default 100).
      seed: seeds the initial weights and the shuffles.
      sizes: the MLP's layer widths (default ``(64, 500, 300, 10)``).
      progress: ``True`` for a tqdm bar over the epochs; a tqdm-like callable, called with the epochs'
        ``range`` and iterated (e.g. ``functools.partial(tqdm.tqdm, desc="adam")``); ``None`` or
        ``False`` (default) for none.

    Returns:
      A :class:`History`: metrics of shape ``(epochs + 1,)`` (index 0: the initial weights) and the final
      params.

    Examples:
      Two blobs, a tiny network, two epochs of Adam:

      >>> import numpy as np
      >>> import adaptive_tx as atx
      >>> rng = np.random.default_rng(0)
      >>> y = np.arange(200, dtype=np.int32) % 2
      >>> x = (rng.normal(size=(200, 2)) + 3 * y[:, None]).astype(np.float32)
      >>> history = train(atx.adam(0.05), Digits(x, y, x, y), epochs=2, batch_size=20, sizes=(2, 8, 2))
      >>> history.test_accuracy.shape, bool(history.test_accuracy[-1] > 0.95)
      ((3,), True)
    """
    return _run(
        lambda _: tx,
        None,
        False,
        data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        sizes=sizes,
        progress=progress,
    )


def _is_list_of_numbers(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(e, numbers.Number) for e in v)


def _grid_axis(v: Any) -> jax.Array:
    v = jnp.asarray(v)
    return v.astype(jnp.float32) if jnp.issubdtype(v.dtype, jnp.floating) else v


def train_grid(
    make_tx: Callable[[Any], optax.GradientTransformation],
    values: Any,
    data: Digits,
    *,
    epochs: int = 6,
    batch_size: int = 100,
    seed: int = 0,
    sizes: Sequence[int] = SIZES,
    progress: Progress = None,
) -> History:
    """:func:`train` for every hyperparameter value in ``values`` at once: one compile, ``jax.vmap`` over them.

    Every run starts from the same weights and sees the same minibatches as ``train(make_tx(v), data,
    ...)`` with the same arguments; only ``tx`` differs. Run ``i`` matches that single run up to float32
    rounding (the batched matrix products sum in a different order).

    Args:
      make_tx: builds the optimizer from one value, which arrives as a traced JAX array (so pass it where
        the optimizer accepts arrays, e.g. ``lambda lr: optax.sgd(lr, momentum=0.9)``).
      values: an array (or a list of numbers) whose leading axis is the grid, or a pytree of such arrays
        (e.g. ``{"rho": [0.9, 0.95], "eps": [1e-6, 1e-4]}``); ``make_tx`` gets one slice. Floating-point
        values are converted to float32, the network's dtype.
      data: as in :func:`train`.
      epochs: as in :func:`train`.
      batch_size: as in :func:`train`.
      seed: as in :func:`train`.
      sizes: as in :func:`train`.
      progress: as in :func:`train`; one bar for the whole grid.

    Returns:
      A :class:`History` whose fields all have a leading axis of the grid's length: metrics of shape
      ``(len(values), epochs + 1)``, and the params of every run.

    Examples:
      >>> import numpy as np
      >>> import optax
      >>> rng = np.random.default_rng(0)
      >>> y = np.arange(200, dtype=np.int32) % 2
      >>> x = (rng.normal(size=(200, 2)) + 3 * y[:, None]).astype(np.float32)
      >>> lrs = np.array([0.0, 0.1], np.float32)
      >>> history = train_grid(optax.sgd, lrs, Digits(x, y, x, y), epochs=2, batch_size=20, sizes=(2, 8, 2))
      >>> history.train_loss.shape, bool(history.train_loss[0, -1] == history.train_loss[0, 0])
      ((2, 3), True)
    """
    values = jax.tree.map(_grid_axis, values, is_leaf=_is_list_of_numbers)
    shapes = [v.shape for v in jax.tree.leaves(values)]
    if not shapes or any(not s or s[0] != shapes[0][0] for s in shapes) or not shapes[0][0]:
        raise ValueError(f"values must be arrays with one shared, non-empty leading (grid) axis, got shapes {shapes}")
    return _run(
        make_tx,
        values,
        True,
        data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        sizes=sizes,
        progress=progress,
    )
