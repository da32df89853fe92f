"""``python -m benchmarks.report OUT.json``: the Markdown tables of ``benchmarks/RESULTS.md`` from a run's JSON.

One table per measurement, optimizers down, ``dtype shape`` across, so that a row reads as one optimizer
on every tree: step time against Optax, the noise control, the memory floor, PyTorch, compile time, the
whole trace + lower + compile time, array-sized fusions, temporary bytes and state bytes per parameter.
"""

import json
import sys
from collections.abc import Callable


def _table(rows: list[dict], title: str, cell: Callable[[dict], str]) -> str:
    columns = list(dict.fromkeys((r["dtype"], r["shape"]) for r in rows))
    optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
    by_key = {(r["optimizer"], r["dtype"], r["shape"]): r for r in rows}
    short = {"float32": "f32", "bfloat16": "bf16"}
    head = "| optimizer | " + " | ".join(f"{short.get(d, d)} {s}" for d, s in columns) + " |"
    lines = [f"## {title}", "", head, "|---|" + "---|" * len(columns)]
    for name in optimizers:
        cells = [cell(by_key[(name, d, s)]) if (name, d, s) in by_key else "-" for d, s in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(key: str) -> Callable[[dict], str]:
    return lambda r: f"{r['ratio'][key]:.2f}" if key in r["ratio"] else "-"


def _pair(field: str, fmt: str = "{:,}") -> Callable[[dict], str]:
    return lambda r: f"{fmt.format(r[field]['adaptive_tx'])} / {fmt.format(r[field]['optax'])}"


def _total(r: dict) -> str:
    total = {k: r["trace_s"][k] + r["lower_s"][k] + r["compile_s"][k] for k in ("adaptive_tx", "optax")}
    return f"{total['adaptive_tx'] / total['optax']:.2f}"


def _over_floor(r: dict) -> str:
    return f"{r['ratio']['adaptive_tx/floor']:.2f} ({r['ratio']['optax/floor']:.2f})"


def _torch(r: dict) -> str:
    return f"{r['ms']['torch'] / r['ms']['optax']:.2f}" if "torch" in r["ms"] else "-"


TABLES = [
    ("Step time, adaptive_tx / Optax", _ratio("adaptive_tx/optax")),
    ("Noise control: Optax / Optax (a second, separately compiled Optax step)", _ratio("optax_control/optax")),
    ("Step time over the memory floor, adaptive_tx (Optax)", _over_floor),
    ("PyTorch / Optax step time", _torch),
    ("Compile time (`lowered.compile()`), adaptive_tx / Optax", _ratio("compile adaptive_tx/optax")),
    ("Trace + lower + compile time, adaptive_tx / Optax", _total),
    ("Array-sized loop fusions per step, adaptive_tx / Optax", _pair("array_fusions")),
    ("Temp bytes (`memory_analysis`), adaptive_tx / Optax", _pair("temp_bytes")),
    ("State bytes per parameter, adaptive_tx / Optax", _pair("state_bytes_per_param", "{:g}")),
]


def report(rows: list[dict]) -> str:
    return "\n\n".join(_table(rows, title, cell) for title, cell in TABLES)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        print(report(json.load(f)["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
