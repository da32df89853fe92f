"""Run by tests/test_checkpoint.py in fresh processes: train, checkpoint with Orbax, resume.

usage: python -m tests.checkpoint_worker (save|resume) DIR OUT.npz
  save:   for each entry of the registry, 5 steps, save (params, state) to DIR/<name>, 5 more steps; the final
          params and state leaves to OUT.
  resume: for each entry, restore DIR/<name> into the abstract (params, state), 5 steps; the same leaves to OUT.

Both runs use the tests' strict dtype promotion (tests/conftest.py), which this fresh process does not load.
"""

import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from tests.helpers import REGISTRY, grad, jitted_step, nested_params

jax.config.update("jax_numpy_dtype_promotion", "strict")


def directory_name(name: str) -> str:
    """An entry's name as a checkpoint directory: ``torch.adam`` becomes ``torch_adam``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _steps(step, params, state, start, count):
    for t in range(start, start + count):
        params, state = step(params, state, t)
    return params, state


def main(mode: str, directory: str, out: str) -> None:
    checkpointer = ocp.StandardCheckpointer()
    finals = {}
    for entry in REGISTRY:
        tx = entry()
        step = jitted_step(tx, grad)  # Compiled once per process: most of this worker's time.
        path = f"{directory}/{directory_name(entry.name)}"
        if mode == "save":
            params = nested_params()
            params, state = _steps(step, params, tx.init(params), 0, 5)
            checkpointer.save(path, (params, state))
        else:
            abstract = jax.eval_shape(lambda p, tx=tx: (p, tx.init(p)), nested_params())
            params, state = checkpointer.restore(path, abstract)
        final = _steps(step, params, state, 5, 5)
        for i, (key, leaf) in enumerate(jax.tree_util.tree_leaves_with_path(final)):
            # bfloat16 widened to float32 (exactly): the .npz format has no bfloat16.
            wide = leaf.astype(jnp.float32) if leaf.dtype == jnp.bfloat16 else leaf
            finals[f"{entry.name}/{i}{jax.tree_util.keystr(key)}"] = np.asarray(wide)
    checkpointer.wait_until_finished()
    np.savez(out, **finals)


if __name__ == "__main__":
    main(*sys.argv[1:])
