"""All-reduce bandwidth as nccl-tests defines it, and the message sizes to measure.

algbw = bytes / time; busbw = algbw * 2 (n - 1) / n for all-reduce (nccl-tests'
doc/PERFORMANCE.md), in GB/s of 1e9 bytes. With one rank busbw is 0: nothing crosses a link.
"""

from __future__ import annotations

UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30}
ELEMENT_BYTES = 4  # float32 elements, nccl-tests' default type

# verify's sizes: small (latency), middle, large (bandwidth); the bench takes its own
DEFAULT_SIZES = (4 * 2**10, 1 * 2**20, 16 * 2**20)


def bus_factor(world_size: int) -> float:
    return 2 * (world_size - 1) / world_size


def algbw_gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9 if seconds > 0 else 0.0


def busbw_gbps(nbytes: int, seconds: float, world_size: int) -> float:
    return algbw_gbps(nbytes, seconds) * bus_factor(world_size)


def parse_sizes(text: str) -> list[int]:
    """ "4K,1M,64M" -> bytes; each a positive multiple of the element size."""
    out = []
    for part in (p.strip().upper() for p in text.split(",") if p.strip()):
        number, unit = part.rstrip("KMGB"), part[len(part.rstrip("KMGB")) :].rstrip("B")
        if not number.isdigit() or unit not in UNITS:
            raise ValueError(f"bad size {part!r} (use bytes or K/M/G, e.g. 4K,1M,64M)")
        nbytes = int(number) * UNITS[unit]
        if nbytes <= 0 or nbytes % ELEMENT_BYTES:
            raise ValueError(f"size {part!r} must be a positive multiple of {ELEMENT_BYTES} bytes")
        out.append(nbytes)
    if not out:
        raise ValueError("no sizes given (e.g. 4K,1M,64M)")
    return out


def human_size(nbytes: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor} {unit}"
    return f"{nbytes} B"
