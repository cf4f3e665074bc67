"""Peer-to-peer integrity: copy known bytes from every GPU to every other and compare every
byte, timing each copy. Imported only inside a probe subprocess (it imports torch).

Two ways per ordered pair: "direct", a device-to-device copy (torch turns peer access on
where the pair supports it: the path NCCL's P2P transport takes), and "host", staged through
pinned host memory (the path NCCL takes with NCCL_P2P_DISABLE=1). On machines whose IOMMU or
PCIe ACS settings break peer-to-peer, direct copies return wrong data or hang while CUDA
reports success; host copies stay right. Judged by envcheck.checks.p2p.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import Any, Callable

COPY_BYTES = 64 * 2**20  # big enough for a bandwidth figure, small enough for 8 GPUs
PAIR_TIMEOUT_S = 20.0  # one 64 MiB copy takes milliseconds; a hung one never ends
REPEATS = 3  # the first copy turns peer access on: the best of the rest is the bandwidth
MODES = ("direct", "host")
ONE_GPU = "one GPU, nothing to compare"


def pattern(torch, nbytes: int):
    """Known bytes on the CPU: every value 0-255 at every alignment, from a fixed seed."""
    gen = torch.Generator().manual_seed(20260521)
    return torch.randint(0, 256, (nbytes,), generator=gen, dtype=torch.uint8)


def copy_between(torch, src, dst: str, mode: str):
    """A real copy of ``src`` onto ``dst`` (never the same storage, even CPU to CPU)."""
    if mode == "direct":
        return torch.empty_like(src, device=dst).copy_(src)
    pinned = src.device.type == "cuda" and torch.cuda.is_available()
    staging = torch.empty(src.shape, dtype=src.dtype, pin_memory=pinned)
    staging.copy_(src)
    return torch.empty_like(src, device=dst).copy_(staging)


def _sync(torch, *devices: str) -> None:
    for d in devices:
        if str(d).startswith("cuda"):
            torch.cuda.synchronize(d)


def _peer_access(torch, src: str, dst: str) -> bool | None:
    if not (src.startswith("cuda") and dst.startswith("cuda")):
        return None
    return bool(torch.cuda.can_device_access_peer(torch.device(src), torch.device(dst)))


def check_pair(
    torch,
    refs: list[Any],
    devices: list[str],
    i: int,
    j: int,
    mode: str,
    timeout: float,
    copy: Callable[..., Any],
) -> dict[str, Any]:
    """Copy device i's reference onto device j REPEATS times; count the wrong bytes of each.

    The copies run in a thread joined with ``timeout``: a copy that never ends is "hung".
    """
    src, dst = devices[i], devices[j]
    nbytes = refs[i].numel()
    row: dict[str, Any] = {
        "src": src,
        "dst": dst,
        "src_index": i,
        "dst_index": j,
        "mode": mode,
        "bytes": nbytes,
    }
    if mode == "direct":
        row["peer_access"] = _peer_access(torch, src, dst)
    box: dict[str, Any] = {"seconds": [], "wrong_bytes": 0}

    def run() -> None:
        try:
            for _ in range(REPEATS):
                start = time.perf_counter()
                out = copy(torch, refs[i], dst, mode)
                _sync(torch, src, dst)
                box["seconds"].append(time.perf_counter() - start)
                wrong = out.ne(refs[j])
                count = int(wrong.sum())
                if count and not box["wrong_bytes"]:
                    box["first_wrong"] = int(wrong.nonzero()[0, 0])
                box["wrong_bytes"] = max(box["wrong_bytes"], count)
        except Exception as exc:
            box["error"] = f"{type(exc).__name__}: {exc}".strip()[:300]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return {**row, "hung": True, "timeout_s": timeout, "copies_done": len(box["seconds"])}
    row.update(hung=False, wrong_bytes=box["wrong_bytes"], copies=len(box["seconds"]))
    if "first_wrong" in box:
        row["first_wrong_offset"] = box["first_wrong"]
    if "error" in box:
        row["error"] = box["error"]
    timed = box["seconds"][1:] or box["seconds"]
    if timed:
        best = min(timed)
        row["seconds"] = round(best, 6)
        row["gbps"] = round(nbytes / best / 1e9, 2) if best > 0 else None
    return row


def run_pairs(
    torch,
    devices: list[str],
    nbytes: int = COPY_BYTES,
    timeout: float = PAIR_TIMEOUT_S,
    copy: Callable[..., Any] = copy_between,
) -> dict[str, Any]:
    """Every ordered pair of ``devices`` (by position: a list may name one device twice, as
    the CPU tests do), both modes. Stops at the first hung copy: the context is wedged."""
    base = pattern(torch, nbytes)
    refs = [base.to(d) for d in devices]
    _sync(torch, *devices)
    pairs: list[dict[str, Any]] = []
    for i in range(len(devices)):
        for j in range(len(devices)):
            if i == j:
                continue
            for mode in MODES:
                row = check_pair(torch, refs, devices, i, j, mode, timeout, copy)
                pairs.append(row)
                if row.get("hung"):
                    return {"devices": devices, "bytes": nbytes, "pairs": pairs, "hung": True}
    return {"devices": devices, "bytes": nbytes, "pairs": pairs, "hung": False}


def probe(args: dict[str, Any]) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"devices": [], "pairs": [], "note": "no CUDA device"}
    devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if len(devices) < 2:
        return {"devices": devices, "pairs": [], "note": ONE_GPU}
    out = run_pairs(
        torch,
        devices,
        int(args.get("bytes") or COPY_BYTES),
        float(args.get("pair_timeout") or PAIR_TIMEOUT_S),
    )
    if out["hung"]:
        # A hung copy wedges the CUDA context, and tearing it down at exit would hang too: once
        # the worker has written this result, end the process without that teardown.
        atexit.register(os._exit, 0)
    return out
