"""Data-parallel training of the digits MLP with Adam, its state split over the data axis (ZeRO-1).

The devices form a mesh with axes ``("data", "model")`` of shape ``(devices / K, K)`` (``K`` is
``--model-parallel``, default 1). Every global batch is split over ``data``: each process feeds only its own
rows, with ``jax.make_array_from_process_local_data``. The MLP is 64-512-256-10 (``--hidden``); its params
are replicated over ``data`` and, with ``K > 1``, split over ``model`` (layers alternately by output and by
input width, where ``K`` divides it). Adam's moments are placed by ``adaptive_tx.sharding.state_shardings``:
with ``--zero`` (the default) each moment is also split over ``data`` (ZeRO-1) along a dimension that
``model`` leaves free and ``data`` divides, so a device keeps ``1 / (devices / K)`` of what it keeps with
``--no-zero`` (the moments placed like the params); a moment with no such dimension stays whole.

One process, on 8 simulated CPU devices (the default; about 8 s on 2 CPU cores)::

    python examples/data_parallel.py

Two processes on one machine, 4 simulated CPU devices each, talking over loopback::

    python examples/data_parallel.py --num-processes 2 --process-id 0 --coordinator 127.0.0.1:12355 &
    python examples/data_parallel.py --num-processes 2 --process-id 1 --coordinator 127.0.0.1:12355

Several hosts: the same flags on each, ``--coordinator`` being host 0's address. ``--devices-per-process``
only sets how many CPU devices to simulate (default ``8 // num_processes``, at least 1); GPUs and TPUs are
used as they are. Keep ``K`` a divisor of the devices per process, so that the ``model`` axis stays
inside a host and only the data-parallel collectives cross the network.

Every run sees the same global batches whatever the number of processes: the training set is shuffled
with ``--seed`` and the epoch, and each process takes its rows of each global batch. So one process and
two processes train the same params, up to the order of the float32 sums in the gradient all-reduce.
The data is scikit-learn's digits (``adaptive_tx.digits.load``); without scikit-learn, a synthetic set of
the same shapes (the first line printed says which).

``--save DIR`` writes the final params and Adam state with Orbax (every process writes its own shards, so on
several hosts DIR must be on storage they share);
``--restore DIR`` starts from such a checkpoint instead of new weights, on this run's mesh and placement,
and carries on with the next epoch (``--epochs 0`` only restores). ``--out FILE.npz`` makes process 0
write the final params and state, gathered from all processes, as NumPy arrays.

The three paths are checked before JAX starts, so a bad one costs no training: ``--restore`` must be a
checkpoint that ``--save`` wrote; ``--save`` a new or empty directory, or such a checkpoint (Orbax replaces
it whole), in an existing, writable directory; ``--out`` a name ending in ``.npz`` (``np.savez`` would append
it to any other) in an existing, writable directory, checked by process 0, the one that writes it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

# The entries of what --save writes; --restore checks that its directory's Orbax metadata names these.
CHECKPOINT_ENTRIES = {"epoch", "opt_state", "params"}


def checkpoint_entries(directory: Path) -> set[str] | None:
    """The top-level entries of the Orbax checkpoint in ``directory``, from its ``_METADATA``; None if it has none."""
    try:
        tree = json.loads((directory / "_METADATA").read_text())["tree_metadata"]
        return {leaf["key_metadata"][0]["key"] for leaf in tree.values()}
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None


def unwritable(path: Path) -> str | None:
    """Why nothing can be created at ``path``: its directory is missing, not a directory, or not writable."""
    parent = path.parent
    if not parent.exists():
        return f"directory {str(parent)!r} does not exist"
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {str(parent)!r} is not writable"
    return None


def path_error(args: argparse.Namespace) -> str | None:
    """The first of ``--restore``, ``--save`` and ``--out`` that cannot be used, as ``argument FLAG: why``."""
    if args.restore is not None:
        restore = Path(args.restore)
        if not restore.exists():
            return f"argument --restore: {args.restore!r} does not exist"
        if not restore.is_dir():
            return f"argument --restore: {args.restore!r} is not a directory"
        if checkpoint_entries(restore) != CHECKPOINT_ENTRIES:
            return (
                f"argument --restore: {args.restore!r} is not a checkpoint written by --save (no Orbax metadata "
                f"naming {', '.join(sorted(CHECKPOINT_ENTRIES))})"
            )
    if args.save is not None:
        save = Path(args.save)
        if save.exists() and not save.is_dir():
            return f"argument --save: {args.save!r} is a file; name a directory for the checkpoint"
        if save.is_dir() and any(save.iterdir()) and checkpoint_entries(save) != CHECKPOINT_ENTRIES:
            # Orbax deletes the directory it saves into: only an earlier checkpoint of this script may go.
            return (
                f"argument --save: {args.save!r} holds files that are not a checkpoint of this script, and saving "
                "would delete them; name a new or empty directory"
            )
        if why := unwritable(save):
            return f"argument --save: {why}"
    if args.out is not None and args.process_id == 0:  # Only process 0 writes it, maybe on a disk of its own.
        out = Path(args.out)
        if args.out.endswith(("/", os.sep)) or out.is_dir():
            return f"argument --out: {args.out!r} is a directory; name a file in it, e.g. {str(out / 'params.npz')!r}"
        if out.suffix != ".npz":
            return f"argument --out: expected a name ending in .npz, got {args.out!r}"
        if why := unwritable(out):
            return f"argument --out: {why}"
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    launch = parser.add_argument_group("processes (the flags a multi-host launch passes)")
    launch.add_argument("--num-processes", type=int, default=1, help="processes in the job (default 1)")
    launch.add_argument("--process-id", type=int, default=0, help="this process's index, 0..N-1")
    launch.add_argument("--coordinator", help="host:port of process 0, e.g. 127.0.0.1:12355 (needed for N > 1)")
    launch.add_argument(
        "--devices-per-process",
        type=int,
        help="simulated CPU devices per process (default 8 // N, at least 1; GPUs and TPUs are used as they are)",
    )
    parser.add_argument("--model-parallel", type=int, default=1, metavar="K", help="size of the model axis (1)")
    parser.add_argument(
        "--hidden",
        type=lambda s: tuple(int(w) for w in s.split(",")),
        default=(512, 256),
        help="hidden widths (default 512,256: powers of 2, so that the axes divide them)",
    )
    parser.add_argument("--zero", action=argparse.BooleanOptionalAction, default=True, help="ZeRO-1 (on)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size (default 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="the split, the weights and the shuffles (0)")
    parser.add_argument(
        "--save",
        metavar="DIR",
        help="write params and Adam state here with Orbax: a new or empty directory, or a checkpoint to replace",
    )
    parser.add_argument("--restore", metavar="DIR", help="start from the Orbax checkpoint in DIR, written by --save")
    parser.add_argument(
        "--out", metavar="FILE.npz", help="process 0 writes the final params and state here (the name ends in .npz)"
    )
    args = parser.parse_args(argv)
    if args.num_processes > 1 and not args.coordinator:
        parser.error("--coordinator is needed with --num-processes > 1")
    if not 0 <= args.process_id < args.num_processes:
        parser.error(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}")
    if why := path_error(args):
        parser.error(why)
    if args.devices_per_process is None:
        args.devices_per_process = max(1, 8 // args.num_processes)
    return args


if __name__ == "__main__":
    # XLA reads its flags once, when JAX starts: the simulated device count must be set before the import.
    ARGS = parse_args()
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={ARGS.devices_per_process}"
    )

import functools  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adaptive_tx as atx  # noqa: E402
from adaptive_tx import digits  # noqa: E402
from adaptive_tx.sharding import state_shardings  # noqa: E402


def load_data(seed: int) -> tuple[str, digits.Digits]:
    """The digits, or, without scikit-learn, ten Gaussian blobs of the same shapes and value range."""
    try:
        return "digits", digits.load(seed)
    except ImportError:
        rng = np.random.default_rng(seed)
        centers = rng.uniform(0, 1, (10, 64))
        y = rng.integers(0, 10, 1797).astype(np.int32)
        x = np.clip(centers[y] + rng.normal(0, 0.3, (1797, 64)), 0, 1).astype(np.float32)
        return "synthetic (scikit-learn is not installed)", digits.Digits(x[:1437], y[:1437], x[1437:], y[1437:])


def param_specs(sizes: tuple[int, ...], model: int) -> list[dict[str, P]]:
    """Megatron-style: even layers split their outputs over "model", odd layers their inputs, where K divides."""
    specs = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i % 2 == 0 and n_out % model == 0:
            specs.append({"w": P(None, "model"), "b": P("model")})
        elif i % 2 == 1 and n_in % model == 0:
            specs.append({"w": P("model", None), "b": P()})
        else:
            specs.append({"w": P(), "b": P()})
    return specs


def local_rows(sharding: NamedSharding, n: int) -> slice:
    """The rows of a global batch of ``n`` that this process's devices hold under ``sharding``."""
    slices = [index[0] for index in sharding.addressable_devices_indices_map((n,)).values() if index]
    rows = sorted({s.indices(n)[:2] for s in slices})
    start, stop = rows[0][0], rows[-1][1]
    if sum(b - a for a, b in rows) != stop - start:
        raise ValueError(f"this process's devices hold rows {rows} of the batch, not one contiguous block")
    return slice(start, stop)


def state_bytes(state: optax.OptState) -> tuple[int, int]:
    """(the bytes of state on this process's most loaded device, the bytes of the whole state)."""
    per_device: dict[jax.Device, int] = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    return max(per_device.values()), sum(leaf.nbytes for leaf in jax.tree.leaves(state))


def main(args: argparse.Namespace) -> None:
    if args.num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes.
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    first = jax.process_index() == 0
    say = print if first else lambda *_, **__: None

    n_devices, model = jax.device_count(), args.model_parallel
    if n_devices % model:
        raise SystemExit(f"--model-parallel {model} does not divide the {n_devices} devices")
    mesh = jax.make_mesh((n_devices // model, model), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    replicated = NamedSharding(mesh, P())
    if args.batch_size % mesh.shape["data"]:
        raise SystemExit(f"--batch-size {args.batch_size} is not divisible by the data axis ({mesh.shape['data']})")

    source, data = load_data(args.seed)
    n_train, n_features = data.x_train.shape
    sizes = (n_features, *args.hidden, 10)
    say(
        f"data: {source}, {n_train} training / {len(data.x_test)} test images; MLP {'-'.join(map(str, sizes))}\n"
        f"mesh: data {mesh.shape['data']} x model {model} on {n_devices} devices in {jax.process_count()} "
        f"process(es); Adam state {'split over data (ZeRO-1)' if args.zero else 'placed like the params'}"
    )

    tx = atx.adam(args.lr)
    param_shardings = [{k: NamedSharding(mesh, s) for k, s in layer.items()} for layer in param_specs(sizes, model)]
    init = functools.partial(digits.init_mlp, sizes=sizes)
    abstract_params = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        jax.eval_shape(init, jax.random.key(args.seed)),
        param_shardings,
    )
    opt_shardings = state_shardings(tx, abstract_params, mesh, zero_axis="data" if args.zero else None)
    if args.restore:
        import orbax.checkpoint as ocp

        abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            jax.eval_shape(tx.init, abstract_params),
            opt_shardings,
        )
        target = {"params": abstract_params, "opt_state": abstract_state, "epoch": np.zeros((), np.int32)}
        with ocp.StandardCheckpointer() as checkpointer:
            restored = checkpointer.restore(os.path.abspath(args.restore), target)
        params, opt_state, start = restored["params"], restored["opt_state"], int(restored["epoch"])
        say(f"restored epoch {start} from {args.restore}")
    else:
        params = jax.jit(init, out_shardings=param_shardings)(jax.random.key(args.seed))
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
        start = 0

    @functools.partial(jax.jit, out_shardings=(param_shardings, opt_shardings, replicated), donate_argnums=(0, 1))
    def train_step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(digits.loss)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batch = NamedSharding(mesh, P("data"))
    mine = local_rows(batch, args.batch_size)  # This process's rows of every global batch.
    steps = n_train // args.batch_size  # The last n_train % batch_size images of each shuffle sit out.
    for epoch in range(start, start + args.epochs):
        order = np.random.default_rng([args.seed, epoch]).permutation(n_train)
        losses = []
        for s in range(steps):
            rows = order[s * args.batch_size : (s + 1) * args.batch_size][mine]
            x = jax.make_array_from_process_local_data(batch, data.x_train[rows], (args.batch_size, n_features))
            y = jax.make_array_from_process_local_data(batch, data.y_train[rows], (args.batch_size,))
            params, opt_state, loss = train_step(params, opt_state, x, y)
            losses.append(loss)
        say(f"epoch {epoch + 1}: training loss {float(jnp.mean(jnp.stack(losses))):.6f} (mean over {steps} steps)")

    # Every process holds the whole test set (replicated), so no process needs another's rows.
    x_test = jax.make_array_from_process_local_data(replicated, data.x_test)
    y_test = jax.make_array_from_process_local_data(replicated, data.y_test)
    say(f"test accuracy {float(jax.jit(digits.accuracy)(params, x_test, y_test)):.4f}")

    per_device, total = state_bytes(opt_state)
    # A collective: every process takes part, and every process gets all of it as NumPy arrays (fine for a
    # model this small; a large one would gather only what it prints or writes).
    host = multihost_utils.process_allgather({"params": params, "opt_state": opt_state}, tiled=True)
    checksum = sum(float(np.sum(leaf, dtype=np.float64)) for leaf in jax.tree.leaves(host["params"]))
    print(
        f"process {jax.process_index()}: Adam state {per_device} bytes per device (the most on any of its "
        f"{jax.local_device_count()} devices), {total} bytes in all; params checksum {checksum:.9f}",
        flush=True,
    )
    end = np.asarray(start + args.epochs, np.int32)
    if args.save:
        import orbax.checkpoint as ocp

        # Every process calls save: each writes the shards it holds, and Orbax synchronizes them.
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(
                os.path.abspath(args.save), {"params": params, "opt_state": opt_state, "epoch": end}, force=True
            )
            checkpointer.wait_until_finished()
        say(f"saved params and Adam state to {args.save}")
    if args.out and first:
        arrays: dict[str, Any] = {
            jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(host)[0]
        }
        np.savez(args.out, **arrays, epoch=end)
        say(f"wrote {args.out}")
    if args.num_processes > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(ARGS)
