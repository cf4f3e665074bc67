"""distributed.torch_p2p: peer-to-peer copies between GPUs return the bytes they were given.

Judges the facts of envcheck.probes.p2p (every ordered GPU pair, direct and through host
memory). Pure over plain data, so the CPU tests and recorded facts replay it.
"""

from __future__ import annotations

from typing import Any

from ..model import CheckResult, DeviceResult, Status, failed, passed, skipped
from ..probes.p2p import ONE_GPU  # what the probe says of a one-GPU machine
from .kernels import gpu_ready, no_gpu_failure
from .registry import Context, register

CAT = "distributed"
NAME = "torch_p2p"

P2P_FIX = (
    "run jobs with NCCL_P2P_DISABLE=1 (NCCL then copies through host memory) until the "
    "platform is fixed: in the BIOS disable PCIe ACS on the switches and set the IOMMU off or "
    "to passthrough (kernel option iommu=pt), update the BIOS and driver; then rerun verify"
)
HOST_FIX = (
    "copies through host memory are wrong too: a GPU, its memory or its PCIe link is faulty; "
    "drain the node and run `dcgmi diag -r 3` on the named GPUs"
)
HANG_FIX = (
    f"a copy between GPUs never finished: {P2P_FIX}; if copies through host memory hang too, "
    "reboot and check `dmesg` for Xid errors"
)


def pair_name(row: dict[str, Any]) -> str:
    src, dst = row.get("src"), row.get("dst")
    if src == dst:  # one device named twice (the CPU tests): tell the pairs apart
        return f"{src}[{row.get('src_index')}] -> {dst}[{row.get('dst_index')}]"
    return f"{src} -> {dst}"


def _row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with one copy, or None when it returned every byte."""
    if row.get("hung"):
        return f"the {row.get('mode')} copy hung (no end after {row.get('timeout_s')} s)"
    if row.get("error"):
        return f"the {row.get('mode')} copy raised {row['error']}"
    wrong = row.get("wrong_bytes")
    if not isinstance(wrong, int) or isinstance(wrong, bool):
        return f"the {row.get('mode')} copy gave no comparison"
    if wrong:
        return (
            f"{wrong} of {row.get('bytes')} bytes differ after the {row.get('mode')} copy "
            f"(first at byte {row.get('first_wrong_offset')}), with CUDA reporting success"
        )
    return None


def judge_p2p(d: dict[str, Any]) -> CheckResult:
    pairs = [r for r in d.get("pairs") or [] if isinstance(r, dict)]
    if not pairs:
        return skipped(CAT, NAME, d.get("note") or ONE_GPU)
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for r in pairs:
        by_pair.setdefault(pair_name(r), []).append(r)
    devices, bad = [], []
    for name, rows in by_pair.items():
        problems = [(r, p) for r in rows if (p := _row_problem(r))]
        rates = {r.get("mode"): r.get("gbps") for r in rows}
        figures = {f"{mode}_gbps": gbps for mode, gbps in rates.items()}
        direct = next((r for r in rows if r.get("mode") == "direct"), {})
        figures["peer_access"] = direct.get("peer_access")
        if problems:
            devices.append(
                DeviceResult(name, Status.FAIL, "; ".join(p for _, p in problems), figures)
            )
            bad.append((name, problems))
            continue
        peer = {True: " (peer access)", False: " (no peer access)"}.get(
            direct.get("peer_access"), ""
        )
        text = ", ".join(
            f"{mode}{peer if mode == 'direct' else ''} {g} GB/s" for mode, g in rates.items()
        )
        devices.append(DeviceResult(name, Status.PASS, f"every byte right; {text}", figures))
    figures = {"pairs": len(by_pair), "bytes": d.get("bytes")}
    if bad:
        name, problems = bad[0]
        modes = {r.get("mode") for _, ps in bad for r, _ in ps}
        hung = any(r.get("hung") for _, ps in bad for r, _ in ps)
        fix = HANG_FIX if hung else HOST_FIX if "host" in modes else P2P_FIX
        return failed(
            CAT,
            NAME,
            f"peer-to-peer copies wrong between {', '.join(n for n, _ in bad)}",
            f"{name}: {problems[0][1]}",
            fix,
            devices=devices,
            figures=figures,
        )
    direct = [r.get("gbps") for r in pairs if r.get("mode") == "direct" and r.get("gbps")]
    slowest = f"; slowest direct pair {min(direct)} GB/s" if direct else ""
    return passed(
        CAT,
        NAME,
        f"{len(by_pair)} GPU pair(s): every byte right, direct and through host memory{slowest}",
        devices=devices,
        figures=figures,
    )


# only where GPUs are expected: the CPU profile's report gains no skip row for it
@register(CAT, NAME, framework="torch", heavy=True, when=lambda ctx: ctx.gpu_expected)
def torch_p2p(ctx: Context) -> CheckResult:
    if not gpu_ready(ctx, "torch"):
        return no_gpu_failure(CAT, NAME, "torch")
    if (ctx.data("torch.facts").get("device_count") or 0) < 2:
        return skipped(CAT, NAME, ONE_GPU)
    return judge_p2p(ctx.data("torch.p2p"))
