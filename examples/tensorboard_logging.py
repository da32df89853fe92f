"""Logging ``track``'s statistics to TensorBoard: Adam on the digits MLP, per layer and for the whole model.

The MLP is 64-500-300-10 on scikit-learn's digits (``adaptive_tx.digits``), trained with minibatch Adam
(``adaptive_tx.adam(1e-3)``, batches of 100, seeded) in a jitted step that donates the params and the state.
The optimizer is wrapped twice: ``track(adam, every=k)`` keeps the whole model's statistics and the outer
``track(..., per_leaf=True, every=k)`` those of every weight matrix and bias, both measured inside the
step on steps 0, k, 2k, ... (``--log-every k``), the steps that are logged. Each logged step writes, with
``tensorboardX.SummaryWriter.add_scalar``, the minibatch's loss (``train/loss``), the whole model's
statistics (``model/effective_lr_median``, ...) and each leaf's (``layers/update_to_param_ratio/0/w``, ...),
as ``adaptive_tx.diagnostics.scalars`` names them, leaving out any value that is not finite. Needs
``pip install "adaptive_tx[tensorboard,notebooks]"`` (tensorboardX and TensorBoard; scikit-learn for the data).

Train for 300 steps, logging every 10th (about 10 s on 2 CPU cores), then look at the charts::

    python examples/tensorboard_logging.py
    tensorboard --logdir runs

Each run adds an event file to ``--logdir`` (default ``runs/tensorboard_logging``); TensorBoard shows every
directory under ``runs`` as a run of its own.
"""

from __future__ import annotations

import argparse
import functools

import jax
import numpy as np
import optax

import adaptive_tx as atx
from adaptive_tx import digits
from adaptive_tx.diagnostics import scalars, track

BATCH_SIZE = 100


def run(logdir: str, steps: int = 300, log_every: int = 10, seed: int = 0) -> dict[int, dict[str, float]]:
    """Train and log every ``log_every``-th step (0, k, 2k, ...) to ``logdir``; return ``{step: {name: value}}``.

    The returned dict is exactly what was written: every name of a logged step, with its value.
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError as err:
        raise ImportError('this example writes with tensorboardX: pip install "adaptive_tx[tensorboard]"') from err
    data = digits.load(seed)
    n_train = len(data.x_train)
    tx = track(track(atx.adam(1e-3), every=log_every), per_leaf=True, every=log_every)
    params = digits.init_mlp(jax.random.key(seed))
    opt_state = tx.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(digits.loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    logged = {}
    rng = np.random.default_rng(seed)
    per_epoch = n_train // BATCH_SIZE  # The last n_train % BATCH_SIZE images of each shuffle sit out.
    with SummaryWriter(str(logdir)) as writer:
        for step in range(steps):
            if step % per_epoch == 0:
                order = rng.permutation(n_train)
            rows = order[step % per_epoch * BATCH_SIZE :][:BATCH_SIZE]
            params, opt_state, loss = train_step(params, opt_state, data.x_train[rows], data.y_train[rows])
            if step % log_every:
                continue
            # opt_state is the outer TrackState (per leaf); its inner_state is the whole model's.
            named = {
                "train/loss": float(loss),
                **scalars(opt_state.inner_state, prefix="model"),
                **scalars(opt_state, prefix="layers"),
            }
            # A bias starts at 0, so at step 0 its update_to_param_ratio is inf: TensorBoard draws no such point.
            values = {name: value for name, value in named.items() if np.isfinite(value)}
            for name, value in values.items():
                writer.add_scalar(name, value, step)
            logged[step] = values
    return logged


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", default="runs/tensorboard_logging", help="where to write (%(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (%(default)s)")
    parser.add_argument("--log-every", type=int, default=10, help="log steps 0, k, 2k, ... (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the split, the weights and the batches (%(default)s)")
    args = parser.parse_args(argv)
    logged = run(args.logdir, args.steps, args.log_every, args.seed)
    last = max(logged)
    print(
        f"logged {len(logged)} steps of {len(logged[last])} scalars to {args.logdir}; at step {last}: "
        f"loss {logged[last]['train/loss']:.4f}, median effective learning rate "
        f"{logged[last]['model/effective_lr_median']:.3g}"
    )
    print(f"view them with: tensorboard --logdir {args.logdir}")


if __name__ == "__main__":
    main()
