"""distributed: all-reduce across ranks under torchrun (NCCL per GPU, gloo x 2 on the CPU)."""

from __future__ import annotations

from typing import Any

from .. import diagnose
from ..distributed.bandwidth import human_size
from ..model import CheckResult, DeviceResult, Status, failed, passed, warned
from .kernels import gpu_ready, no_gpu_failure
from .registry import Context, register

CAT = "distributed"


def rank_results(d: dict[str, Any]) -> list[DeviceResult]:
    blamed = set((d.get("failure") or {}).get("ranks") or [])
    out = []
    for r in d.get("ranks", []):
        where = f" ({r['host']}, {r.get('device')})" if r.get("host") else ""
        label = f"rank {r['rank']}{where}"
        sizes = r.get("sizes", [])
        figures = {f"seconds_{x['bytes']}": x["seconds"] for x in sizes}
        if r["rank"] in blamed or not r.get("ok"):
            wrong = [x for x in sizes if not x["exact"]]
            msg = (
                f"{wrong[0]['wrong_elements']} wrong element(s) at {human_size(wrong[0]['bytes'])}"
                if wrong
                else f"no result ({len(sizes)} of {len(d.get('sizes') or sizes)} sizes done)"
            )
            out.append(DeviceResult(label, Status.FAIL, msg, figures))
            continue
        last = sizes[-1]
        msg = (
            f"exact at {len(sizes)} size(s); {human_size(last['bytes'])} in "
            f"{last['seconds'] * 1e3:.2f} ms"
        )
        out.append(DeviceResult(label, Status.PASS, msg, figures))
    return out


def nccl_mismatch(d: dict[str, Any]) -> str | None:
    """Why the NCCL torch loads is not the lock's, or None (also when nothing to compare)."""
    loaded = d.get("nccl_version")
    locked = (d.get("lock_nccl") or {}).get("versions") or []
    # torch says x.y.z; conda-forge's nccl versions add a build digit (2.27.3.1)
    if not loaded or not locked or any(v.split(".")[:3] == loaded.split(".") for v in locked):
        return None
    return f"torch loads NCCL {loaded} but the lock holds nccl {', '.join(locked)}"


@register(CAT, "torch", framework="torch", heavy=True)
def torch_allreduce(ctx: Context) -> CheckResult:
    if ctx.gpu_expected and not gpu_ready(ctx, "torch"):
        return no_gpu_failure(CAT, "torch", "torch")
    d = ctx.data("torch.distributed")
    devices = rank_results(d)
    lock = d.get("lock_nccl") or {}
    figures = {
        "backend": d.get("backend"),
        "world_size": d.get("world_size"),
        "nodes": d.get("nodes"),
        "nccl_version": d.get("nccl_version"),
        "lock_nccl": lock.get("versions"),
        "sizes": [
            {k: s[k] for k in ("bytes", "seconds", "algbw_gbps", "busbw_gbps")}
            for s in d.get("sizes", [])
        ],
    }
    if not d.get("ok"):
        f = d.get("failure") or {
            "message": "no complete result",
            "cause": "rank 0 reported fewer sizes than were asked for",
            "fix": "rerun `torchrun --standalone --nproc-per-node 2 -m envcheck.distributed`",
        }
        fix = f["fix"]
        oom = diagnose.out_of_memory(f["cause"])
        if oom:  # the ranks' own advice was about the transport in older facts
            fix = oom.fix
        return failed(CAT, "torch", f["message"], f["cause"], fix, devices=devices,
                      figures=figures)  # fmt: skip
    big = d["sizes"][-1]
    nccl = f", NCCL {d['nccl_version']}" if d.get("nccl_version") else ""
    msg = (
        f"{d['world_size']} rank(s), {d['backend']}{nccl}: all-reduce exact at "
        f"{len(d['sizes'])} sizes; {human_size(big['bytes'])} algbw {big['algbw_gbps']:.2f} "
        f"GB/s, busbw {big['busbw_gbps']:.2f} GB/s"
        + (" (one rank: no link crossed)" if d["world_size"] == 1 else "")
    )
    mismatch = nccl_mismatch(d)
    if mismatch:
        return warned(
            CAT,
            "torch",
            msg,
            f"{mismatch}: another libnccl shadows the env's",
            "unset LD_LIBRARY_PATH (see environment.ld_library_path) and reinstall the env "
            "from the lock (pixi install --locked)",
            devices=devices,
            figures=figures,
        )
    return passed(CAT, "torch", msg, devices=devices, figures=figures)
