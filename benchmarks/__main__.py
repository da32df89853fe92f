"""``python -m benchmarks [--quick | --smoke] [--json OUT] [--gpu] [--device cpu|gpu] [--shapes A,B] [--donation]``.

Default: the full CPU suite (one 16M leaf, a 181-leaf transformer-shaped tree, 2000 leaves of 1k; float32 and
bfloat16 with 16-bit state), 15 interleaved repetitions. ``--quick``: the same trees, small, 3 repetitions.
``--gpu``: one leaf of 1G parameters on the GPU (``--gpu --quick``: 1M; ``--gpu --device cpu`` runs that
preset on the CPU). ``--donation``: RMSprop's step with and without buffer donation.
"""

import argparse
import json
import os
import platform
import sys
import time

# On a GPU, allocate as needed: the 1G-parameter steps, the floor and PyTorch's allocator share the device.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# PyTorch's OpenMP workers otherwise spin for a while after each of its steps, on the cores the next
# (interleaved) JAX step needs: with them spinning, whichever step followed PyTorch's ran up to 1.35x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402

from benchmarks import suite  # noqa: E402

# Compile times are measured: none may come from a persistent compilation cache a user or the tests set up
# (JAX_COMPILATION_CACHE_DIR). Set before the first compile, which decides whether the cache is used.
jax.config.update("jax_enable_compilation_cache", False)


def versions() -> dict:
    import jaxlib
    import optax

    out = {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__}
    out["optax"] = optax.__version__
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        out["torch"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions (a smoke test)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 2 repetitions (the test suite's run)")
    parser.add_argument("--json", metavar="OUT", help="write every row as JSON to OUT")
    parser.add_argument("--gpu", action="store_true", help="the GPU preset: one leaf of 1G params (--quick: 1M)")
    parser.add_argument("--device", choices=("cpu", "gpu"), help="where to run (default: gpu with --gpu, else cpu)")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 15, --quick 5)")
    parser.add_argument("--optimizers", default=",".join(suite.OPTIMIZERS), help="comma-separated subset")
    parser.add_argument("--compile-reps", type=int, default=1, help="trace/lower/compile each step N times (medians)")
    parser.add_argument("--shapes", help="comma-separated subset of the preset's trees (e.g. 1x16M,transformer181)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    parser.add_argument("--donation", action="store_true", help="only: RMSprop with and without donation")
    args = parser.parse_args(argv)

    platform_name = args.device or ("gpu" if args.gpu else "cpu")
    try:
        device = jax.devices(platform_name)[0]
    except RuntimeError as error:
        print(f"no {platform_name} device: {error}", file=sys.stderr)
        return 2
    if args.donation:
        with jax.default_device(device):
            suite.donation()
        return 0
    if args.gpu:
        shapes = suite.GPU_QUICK_SHAPES if args.quick else suite.GPU_SHAPES
    elif args.smoke:
        shapes = suite.SMOKE_SHAPES
    else:
        shapes = suite.QUICK_SHAPES if args.quick else suite.SHAPES
    if args.shapes:
        unknown = set(args.shapes.split(",")) - set(shapes)
        if unknown:
            print(
                f"unknown --shapes {', '.join(sorted(unknown))}; this preset has {', '.join(shapes)}", file=sys.stderr
            )
            return 2
        shapes = {name: leaves for name, leaves in shapes.items() if name in args.shapes.split(",")}
    reps = args.reps or (2 if args.smoke else 3 if args.quick else 15)
    optimizers = [name for name in args.optimizers.split(",") if name]
    torch = False if args.no_torch else None
    if torch is None and platform_name == "gpu":  # a CUDA build only, else its CPU step would be measured
        try:
            import torch as _torch

            torch = bool(_torch.cuda.is_available())
        except ImportError:
            torch = False
    print(f"device {device}, {reps} interleaved repetitions; medians")
    start = time.perf_counter()
    rows = suite.run(
        shapes, optimizers=optimizers, reps=reps, device=device, torch=torch, compile_reps=args.compile_reps
    )
    print()
    print(suite.format_table(rows))
    print(f"\n{len(rows)} rows in {time.perf_counter() - start:.1f} s")
    if args.json:
        meta = {
            "versions": versions(),
            "device": str(device),
            "quick": args.quick,
            "smoke": args.smoke,
            "gpu": args.gpu,
            "reps": reps,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
