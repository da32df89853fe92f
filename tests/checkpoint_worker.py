"""Run by tests/test_checkpoint.py in fresh processes: train, checkpoint with Orbax, resume.

usage: python -m tests.checkpoint_worker (save|resume) DIR OUT.npz
  save:   for each optimizer, 5 steps, save (params, state) to DIR/<name>, 5 more steps; final params to OUT.
  resume: for each optimizer, restore DIR/<name> into the abstract (params, state), 5 steps; params to OUT.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from tests.helpers import OPTIMIZERS, nested_params


def _grad(params, t):
    return jax.tree.map(lambda w: w - 1 + jnp.sin(3 * w) + jnp.asarray(t, w.dtype) / 10, params)


def _steps(tx, params, state, start, count):
    @jax.jit
    def step(params, state, t):
        updates, state = tx.update(_grad(params, t), state, params)
        return optax.apply_updates(params, updates), state

    for t in range(start, start + count):
        params, state = step(params, state, t)
    return params, state


def main(mode: str, directory: str, out: str) -> None:
    checkpointer = ocp.StandardCheckpointer()
    finals = {}
    for case in OPTIMIZERS:
        tx = case.optimizer(**case.unusual[0])
        path = f"{directory}/{case.name}"
        if mode == "save":
            params = nested_params()
            params, state = _steps(tx, params, tx.init(params), 0, 5)
            checkpointer.save(path, (params, state))
            checkpointer.wait_until_finished()
        else:
            abstract = jax.eval_shape(lambda p, tx=tx: (p, tx.init(p)), nested_params())
            params, state = checkpointer.restore(path, abstract)
        params, _ = _steps(tx, params, state, 5, 5)
        for i, leaf in enumerate(jax.tree.leaves(params)):
            finals[f"{case.name}/{i}"] = np.asarray(leaf)
    np.savez(out, **finals)


if __name__ == "__main__":
    main(*sys.argv[1:])
