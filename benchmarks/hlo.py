"""Reading compiled XLA programs: how many array-sized loop fusions a step runs."""

import re
from collections.abc import Iterable

# One fusion instruction of a scheduled HLO module, e.g.
#   %multiply_add_fusion.2 = f32[65536]{0} fusion(%g.1, %mu.1), kind=kLoop, calls=%fused_computation.5, ...
#   %fusion.3 = (f32[512,512]{1,0}, bf16[512,512]{1,0}) fusion(...), kind=kLoop, ...
_FUSION = re.compile(r"^\s*(?:ROOT\s+)?%[\w.\-]+\s*=\s*(?P<shape>.+?)\s+fusion\(.*?kind=(?P<kind>k\w+)", re.M)
_ARRAY = re.compile(r"\b[a-z]+\d*\[(?P<dims>[\d,]*)\]")


def _sizes(shape: str) -> list[int]:
    sizes = []
    for match in _ARRAY.finditer(shape):
        size = 1
        for dim in filter(None, match["dims"].split(",")):
            size *= int(dim)
        sizes.append(size)
    return sizes


def count_array_fusions(hlo_text: str, leaf_sizes: Iterable[int], kinds: Iterable[str] = ("kLoop",)) -> int:
    """The number of fusions in ``hlo_text`` (``compiled.as_text()``) with an array-sized output.

    A fusion counts once when any array of its output (a multi-output fusion returns a tuple) has as many
    elements as one of ``leaf_sizes``, the full sizes of the parameter leaves; fusions on scalars (the step
    count, bias-correction factors) do not count. Only fusions of the given ``kinds`` count (loop fusions by
    default: each is one pass over the arrays it reads and writes).
    """
    sizes, kinds = set(leaf_sizes), set(kinds)
    return sum(
        1
        for match in _FUSION.finditer(hlo_text)
        if match["kind"] in kinds and any(size in sizes for size in _sizes(match["shape"]))
    )
