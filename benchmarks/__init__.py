"""The benchmark suite: ``python -m benchmarks [--quick] [--json OUT] [--gpu]``.

Times one jitted, donated step of each of adaptive_tx's five optimizers against Optax's closest
equivalent (and PyTorch's fused or foreach step when torch is installed) in one process, with interleaved
repetitions, and against a memory floor (a kernel that reads and writes as many full-size arrays as the
step must); also the trace and compile times, state bytes per parameter, array-sized loop fusions and
temporary bytes of each compiled step. See ``benchmarks/suite.py`` and ``benchmarks/RESULTS.md``.
"""
