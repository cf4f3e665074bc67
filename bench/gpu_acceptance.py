"""envcheck's acceptance run on a real NVIDIA GPU: one output folder, one summary.md.

    bash bench/gpu_acceptance.sh MNIST_DIR [OUT_DIR]        # or: python3 bench/gpu_acceptance.py

From a checkout, with a Python that has a CUDA build of PyTorch, rich and numpy (nvidia-ml-py
optional, platformdirs not needed); no pixi, TensorFlow or network. The whole run is held to
--budget seconds (300); each step has its own budget (BUDGETS), and a step that would start
with too little time left is reported as not run. In this order:

  preflight  NVML (GPUs, driver, compute and persistence mode), MNIST, output folder, torch
  faults     each `verify --no-training` must FAIL with exit 1, a diagnosis (cause and fix) and
             no traceback: CUDA_VISIBLE_DEVICES=""; CUDA_VISIBLE_DEVICES naming a GPU UUID that
             does not exist; --expect of the wrong CUDA major; another process holding the GPU
             (default compute mode: all but ~256 MiB of its memory -> out of memory; exclusive
             process: the holder owns the GPU -> busy; prohibited: skipped, saying why)
  pass       one whole cold `verify --expect cudaN --framework torch --require-gpu` (training
             included): must PASS; its wall time is the cold-verify figure
  p2p        the pass run's peer-to-peer result, where verify has one (one GPU: "nothing to
             compare")
  bench      bench/mnist.py --framework torch --device cuda --full, seeds 0, 1, 2 (training
             only: the cold verify ran once, above)
  info       envcheck info --json
  summary.md status, exit code, budget and seconds of every step, the MNIST figures per seed

Each verify's raw facts become fixtures in OUT/fixtures/<gpu>-<run>.json (host names, home
folder, user and GPU UUIDs scrubbed, with the live verdicts); copy them to tests/data/facts/
and tests/test_gpu_acceptance.py replays them. `--archive FILE` also packs OUT into a .tar.gz.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install needed
sys.path.insert(0, str(ROOT / "bench"))

import gpu_acceptance_report as paper  # noqa: E402

SEEDS = (0, 1, 2)
LEAVE_MIB = 256  # what the out-of-memory fault leaves free on the GPU
MADE_UP_UUID = "GPU-00000000-0000-0000-0000-000000000000"
# The whole run, preflight included, is held to this (--budget changes it): the 5 min.
BUDGET_S = 300
# Each step's own budget (s), in the order they run: the faults first, so that an overrun can
# only cost figures, never a fault. With three seeds they add up to BUDGET_S
# less PREFLIGHT_S and RESERVE_S.
PREFLIGHT_S = 25  # NVML, and importing torch once (a cold disk)
BUDGETS = {
    "fault-hidden": 15,
    "fault-unknown-uuid": 15,
    "fault-wrong-cuda": 35,
    "fault-gpu-held": 50,  # the holder's start (HOLD_READY_S at most) and the verify
    "pass": 80,
    "p2p": 1,  # reads the pass run's report, runs nothing
    "bench-seed": 20,  # each seed: a cold training (torch import, data load, 2 epochs)
    "info": 14,
}
HOLD_READY_S = 20  # the memory-holding process must be ready within this
RESERVE_S = 5  # writing the summary and the fixtures after the last step
MIN_STEP_S = 8  # a step with less time than this left is not started
# Modules the script and verify import (checked before anything else runs)
NEEDS = ("numpy", "rich")


class Abort(Exception):
    """Stop before any step ran: one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mnist", help="folder holding the four MNIST .gz files")
    p.add_argument("out", nargs="?", help="new or empty output folder (default reports/gpu-*)")
    p.add_argument("--archive", metavar="FILE", help="also write OUT as a .tar.gz here")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="bench seeds (0,1,2)")
    p.add_argument(
        "--budget",
        type=float,
        default=BUDGET_S,
        metavar="S",
        help=f"seconds for the whole run; steps that do not fit are not started ({BUDGET_S})",
    )
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["hog"]:  # the held-GPU fault's second process
        hog = argparse.ArgumentParser(prog="gpu_acceptance.py hog")
        hog.add_argument("--leave-mib", type=int, default=LEAVE_MIB)
        hog.add_argument("--ready", required=True)
        ns = hog.parse_args(argv[1:])
        return hold_gpu_memory(ns.leave_mib, Path(ns.ready))
    ns = p.parse_args(argv)
    # a kill ends the steps' process groups and still writes the summary, like Ctrl-C
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_all(ns)
    except Abort as exc:
        print(f"gpu_acceptance: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("gpu_acceptance: interrupted; the steps' processes were ended", file=sys.stderr)
        return 130


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# ------------------------------------------------------------------ checks before any step


def missing_needs() -> list[str]:
    """The modules of NEEDS this Python cannot import (numpy reads MNIST, rich draws reports)."""
    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


def gpu_mode(gpu: dict[str, Any]) -> dict[str, Any]:
    """GPU 0's compute and persistence mode, as NVML gives them (None: NVML could not say)."""
    persistence = gpu.get("persistence_mode")
    return {
        "compute_mode": gpu.get("compute_mode"),
        "persistence_mode": None if persistence is None else bool(persistence),
    }


def preflight(ns: argparse.Namespace) -> tuple[dict[str, Any], Path, Path]:
    missing = missing_needs()
    if missing:
        raise Abort(
            f"{' and '.join(missing)} not installed in {sys.executable}; envcheck needs "
            f"{'them' if len(missing) > 1 else 'it'} here: `{sys.executable} -m pip install "
            f"{' '.join(missing)}`, or set PYTHON to a Python that has "
            f"{'them' if len(missing) > 1 else 'it'}"
        )
    from envcheck.mnist.data import find_in_dir  # numpy: only once it is known to be there
    from envcheck.probes import nvml

    facts = nvml.gather({})  # the driver's own answer; fails fast where there is none
    if not facts.get("available") or not facts.get("gpus"):
        why = facts.get("error") or "the driver reports no GPU"
        raise Abort(f"no NVIDIA GPU: this script needs one (NVML: {why})")
    mnist = Path(ns.mnist).expanduser().resolve()
    if not mnist.is_dir():
        raise Abort(f"MNIST folder {mnist} does not exist; pass a folder holding the four files")
    _, missing = find_in_dir(mnist)
    if missing:
        raise Abort(f"MNIST folder {mnist} lacks {', '.join(missing)}; copy the files there")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(ns.out or ROOT / "reports" / f"gpu-acceptance-{stamp}").expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Abort(f"output folder {out} exists and is not empty; name a new one")
    gpu = facts["gpus"][0]
    mode = gpu_mode(gpu)
    if mode["compute_mode"] == "prohibited":
        raise Abort(
            "GPU 0 is in PROHIBITED compute mode: no process may use it; ask an admin to run "
            "`nvidia-smi -i 0 -c DEFAULT`"
        )
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
            capture_output=True,
            text=True,
            timeout=PREFLIGHT_S * 4,
        )
    except subprocess.TimeoutExpired:
        raise Abort(
            f"importing torch took over {PREFLIGHT_S * 4} s; check the Python and its disk"
        ) from None
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise Abort(f"{sys.executable} cannot import torch ({last}); use a Python with CUDA torch")
    version, cuda = probe.stdout.split()
    if cuda == "None":
        raise Abort(f"torch {version} is a CPU-only build; this script needs a CUDA build")
    out.mkdir(parents=True, exist_ok=True)
    (out / "facts").mkdir()
    meta = {
        "gpu": f"{len(facts['gpus'])}x {gpu['name']} ({gpu['memory_total_mib']} MiB)",
        "gpu_name": gpu["name"],
        "gpu_count": len(facts["gpus"]),
        "driver": facts.get("driver_version"),
        "driver_cuda": facts.get("cuda_driver_version"),
        **mode,
        "torch": version,
        "torch_cuda": cuda,
        "cuda_major": int(cuda.split(".")[0]),
        "python": platform.python_version(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return meta, mnist, out


# ------------------------------------------------------------------ running steps


def child_env(**extra: str) -> dict[str, str]:
    """The caller's environment, envcheck importable from this checkout, no profile preset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCHECK_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_step(
    step: dict[str, Any], argv: list[str], out: Path, timeout: float, env: dict[str, str]
) -> None:
    """Run one step's process in its own process group, killed at ``timeout``; its stdout and
    stderr go to OUT/logs."""
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    step["command"] = " ".join(argv[1:]).replace(str(ROOT) + "/", "")
    so = open(logs / f"{step['name']}.out", "w")
    se = open(logs / f"{step['name']}.err", "w")
    try:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=so, stderr=se, start_new_session=True
        )
        try:
            step["exit_code"] = proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            step["exit_code"] = None
            step["note"] = f"timed out after {timeout:.0f} s (its budget)"
        except BaseException:  # Ctrl-C, kill: end the step's whole process group first
            kill_group(proc)
            raise
    finally:
        so.close()
        se.close()
    text = (logs / f"{step['name']}.out").read_text(errors="replace")
    text += (logs / f"{step['name']}.err").read_text(errors="replace")
    step["traceback"] = "Traceback (most recent call last)" in text


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def verify_argv(out: Path, name: str, expect: str, mnist: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "envcheck",
        "verify",
        "--expect",
        expect,
        "--framework",
        "torch",
        "--require-gpu",
        "--data-dir",
        str(mnist),
        "--no-download",
        "--json",
        str(out / f"{name}.json"),
        "--save-facts",
        str(out / "facts" / f"{name}.json"),
        *extra,
    ]


def judge_verify(step: dict[str, Any], out: Path) -> None:
    """Did a verify step give what was expected: PASS, or FAIL with the diagnosis looked for."""
    path = out / f"{step['name']}.json"
    report = _read_json(path)
    step["report"] = str(path)
    fails = paper.failed_checks(report)
    step["failed_checks"] = fails
    step["figures"] = {
        "status": report.get("status", "no report"),
        "checks": ", ".join(f"{n} {s}" for s, n in (report.get("counts") or {}).items() if n),
        "duration s": report.get("duration_s"),
    }
    problems = []
    if step["traceback"]:
        problems.append("a traceback was printed")
    if step["expect"] == "pass":
        if step["exit_code"] != 0:
            problems.append("verify did not pass: " + "; ".join(c["id"] for c in fails))
        training = _check(report, "training.torch")
        if training:
            f = training.get("figures") or {}
            step["figures"]["accuracy"] = _pct(f.get("test_accuracy"))
            step["figures"]["training s"] = _round(f.get("train_seconds"))
            step["figures"]["to 99% s"] = _round(f.get("time_to_99_seconds"))
            step["figures"]["without first step"] = _round(
                f.get("time_to_99_after_first_step_seconds")
            )
        compiled = _check(report, "compile.torch")
        if compiled:  # torch.compile on the GPU: Triton's cold compile, its own line
            f = compiled.get("figures") or {}
            step["figures"]["compile cold s"] = _round(f.get("cold_seconds"))
            step["figures"]["compile warm s"] = _round(f.get("warm_seconds"))
    else:
        if step["exit_code"] != 1:
            problems.append(f"exit code {step['exit_code']}, expected 1")
        hit = [c for c in fails if step["looks_for"](c)]
        # the summary shows the checks that gave the diagnosis looked for, then the others
        step["failed_checks"] = hit + [c for c in fails if c not in hit]
        if not hit:
            problems.append(f"no FAIL says {step['wanted']}")
        elif not all(c.get("cause") and c.get("fix") for c in hit):
            problems.append("the FAIL lacks a cause or a fix")
    if step.get("note"):
        problems.insert(0, step["note"])
    step["ok"] = not problems
    step["note"] = "; ".join(problems)


def _read_json(path: Path) -> dict[str, Any]:
    """A step's JSON output, or {} where the step wrote none (killed, crashed)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _check(report: dict, check_id: str) -> dict | None:
    for cat in report.get("categories", []):
        for c in cat.get("checks", []):
            if c["id"] == check_id:
                return c
    return None


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v:.2%}"


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _text(c: dict) -> str:
    return " ".join(str(c.get(k) or "") for k in ("message", "cause", "fix")).lower()


# ------------------------------------------------------------------ the plan and its clock

Action = Callable[[dict[str, Any], float], None]  # (step, seconds it may take)


def new_step(name: str, title: str, expect: str, action: Action, **kw: Any) -> dict[str, Any]:
    step = {"name": name, "title": title, "expect": expect, "note": "", "figures": {}, **kw}
    key = "bench-seed" if name.startswith("bench-seed") else name
    step.update(budget=BUDGETS[key], action=action)
    return step


def run_plan(
    steps: list[dict[str, Any]], budget: float, clock: Callable[[], float], start: float
) -> None:
    """Run the steps in order, each for at most its own budget and what is left of the
    whole run's (``budget`` seconds from ``start``); a step that would start with less than
    MIN_STEP_S left is reported as not run. Each step's seconds are measured here."""
    for step in steps:
        left = budget - (clock() - start) - RESERVE_S
        if left < MIN_STEP_S:
            step.update(ok=False, exit_code=None, seconds=None, command="(not run)")
            step["note"] = f"not run: {max(left, 0):.0f} s left of the {budget:.0f} s budget"
            continue
        t0 = clock()
        try:
            step["action"](step, min(step["budget"], left))
        except Exception as exc:  # a fault of this script: the other steps still run
            step.update(ok=False, note=f"the script failed here: {type(exc).__name__}: {exc}")
        finally:
            step["seconds"] = round(clock() - t0, 1)


def build_plan(
    meta: dict[str, Any], mnist: Path, out: Path, seeds: list[int]
) -> list[dict[str, Any]]:
    """The steps in the order they run: faults, the one whole cold verify, figures."""
    n = meta["cuda_major"]
    wrong = f"cuda{12 if n == 13 else 13}"
    steps: list[dict[str, Any]] = []

    def fault(name, title, expect, env, wanted, looks_for):
        def act(step: dict[str, Any], timeout: float) -> None:
            run_step(step, verify_argv(out, name, expect, mnist, "--no-training"), out,
                     timeout, child_env(**env))  # fmt: skip
            judge_verify(step, out)

        steps.append(new_step(name, title, "fail", act, wanted=wanted, looks_for=looks_for))

    fault(
        "fault-hidden",
        'faults: CUDA_VISIBLE_DEVICES=""',
        f"cuda{n}",
        {"CUDA_VISIBLE_DEVICES": ""},
        "every GPU is hidden",
        lambda c: "hides every gpu" in _text(c),
    )
    fault(
        "fault-unknown-uuid",
        f"faults: CUDA_VISIBLE_DEVICES={MADE_UP_UUID}",
        f"cuda{n}",
        {"CUDA_VISIBLE_DEVICES": MADE_UP_UUID},
        "CUDA_VISIBLE_DEVICES names no GPU",
        lambda c: "names no gpu of this machine" in _text(c),
    )
    fault(
        "fault-wrong-cuda",
        f"faults: --expect {wrong} (wrong CUDA major)",
        wrong,
        {},
        f"the build is not CUDA {wrong[4:]}",
        lambda c: c["id"] == "build.torch" and f"expects cuda {wrong[4:]}" in _text(c),
    )
    steps.append(held_gpu_step(meta, out, mnist, n))

    def whole_verify(step: dict[str, Any], timeout: float) -> None:
        argv = verify_argv(out, "pass", f"cuda{n}", mnist, "--junit", str(out / "pass.xml"))
        run_step(step, argv, out, timeout, child_env())
        judge_verify(step, out)

    title = f"pass: one whole cold verify --expect cuda{n} --require-gpu"
    steps.append(new_step("pass", title, "pass", whole_verify))
    steps.append(new_step("p2p", "p2p: peer-to-peer between GPUs", "pass", p2p_action(meta, out)))

    for seed in seeds:

        def bench(step: dict[str, Any], timeout: float, seed: int = seed) -> None:
            argv = [
                sys.executable,
                str(ROOT / "bench" / "mnist.py"),
                *("--framework", "torch", "--device", "cuda", "--full"),
                *("--data-dir", str(mnist), "--offline", "--seed", str(seed)),
                *("--json", str(out / f"bench-seed{seed}.json")),
            ]
            run_step(step, argv, out, timeout, child_env())
            row = paper.seed_figures(_read_json(out / f"bench-seed{seed}.json"))
            row["seed"] = seed
            step["seed_row"] = row
            step["figures"] = {
                "accuracy": _pct(row.get("test_accuracy")),
                "to 99% s": _round(row.get("time_to_99_seconds")),
                "to 99% s without first step": _round(
                    row.get("time_to_99_after_first_step_seconds")
                ),
            }
            step["ok"] = step["exit_code"] == 0 and not step["traceback"] and not step["note"]
            if step["exit_code"] not in (0, None):
                step["note"] = f"bench exited {step['exit_code']} (training failed)"

        title = f"bench: mnist.py --full, seed {seed}"
        steps.append(new_step(f"bench-seed{seed}", title, "pass", bench))

    def info(step: dict[str, Any], timeout: float) -> None:
        argv = [sys.executable, "-m", "envcheck", "info", "--framework", "torch"]
        run_step(step, [*argv, "--json", str(out / "info.json")], out, timeout, child_env())
        step["ok"] = step["exit_code"] == 0 and not step["traceback"] and not step["note"]

    steps.append(new_step("info", "info: envcheck info --json", "pass", info))
    return steps


def run_all(ns: argparse.Namespace) -> int:
    t0 = time.monotonic()
    meta, mnist, out = preflight(ns)
    meta["preflight_seconds"] = round(time.monotonic() - t0, 1)
    meta["budget_seconds"] = ns.budget
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
    steps = build_plan(meta, mnist, out, seeds)
    try:
        run_plan(steps, ns.budget, time.monotonic, t0)
    finally:
        meta["seconds"] = time.monotonic() - t0
        finish(meta, steps, out, ns.archive)
    return 0 if all(s["ok"] for s in steps) else 1


# ------------------------------------------------------------------ the held GPU


def held_gpu_form(compute_mode: str | None) -> tuple[str, str] | None:
    """What another process holding GPU 0 must make verify say, in this compute mode:
    (what is wanted, the text a FAIL must hold), or None where the step cannot run."""
    if compute_mode in ("exclusive_process", "exclusive_thread"):
        # the holder owns the GPU: verify cannot even create a context there
        return "the GPU is taken (exclusive-process mode)", "busy or unavailable"
    if compute_mode == "prohibited":
        return None
    return (
        "out of memory, with smaller batch / gradient accumulation / mixed precision",
        "out of memory",
    )


def held_gpu_step(meta: dict[str, Any], out: Path, mnist: Path, n: int) -> dict[str, Any]:
    """Another process holds GPU 0 while verify runs, in the form the compute mode allows:
    default mode: it holds all but ~LEAVE_MIB of the memory (out of memory); exclusive
    process: it owns the GPU (busy)."""
    mode = meta.get("compute_mode")
    form = held_gpu_form(mode)
    exclusive = mode in ("exclusive_process", "exclusive_thread")
    title = (
        "faults: another process owns the GPU (exclusive-process mode)"
        if exclusive
        else f"faults: another process holds all but {LEAVE_MIB} MiB of GPU memory"
    )
    wanted, needle = form or ("", "")

    def looks_for(c: dict) -> bool:
        text = _text(c)
        if needle != "out of memory":
            return needle in text
        fixes = ("smaller batch", "gradient accumulation", "mixed precision")
        return needle in text and all(f in text for f in fixes)

    def act(step: dict[str, Any], timeout: float) -> None:
        step["figures"]["compute mode"] = mode or "unknown"
        if form is None:
            step.update(ok=False, exit_code=None, command="(not run)")
            step["note"] = f"not run: compute mode {mode} lets no process use the GPU"
            return
        run_held(step, out, mnist, n, timeout)

    return new_step("fault-gpu-held", title, "fail", act, wanted=wanted, looks_for=looks_for)


def run_held(step: dict[str, Any], out: Path, mnist: Path, n: int, timeout: float) -> None:
    t0 = time.monotonic()
    ready = out / "logs" / "hog-ready.json"
    (out / "logs").mkdir(exist_ok=True)
    hog_log = open(out / "logs" / "hog.err", "w")
    hog = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "hog", "--ready", str(ready)],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=hog_log,
        start_new_session=True,
    )
    try:
        wait = min(HOLD_READY_S, timeout / 2)
        while not ready.is_file() and hog.poll() is None and time.monotonic() - t0 < wait:
            time.sleep(0.2)
        if not ready.is_file():
            step.update(ok=False, exit_code=None, command="(not run)")
            step["note"] = (
                f"the memory-holding process was not ready within {wait:.0f} s (see logs/hog.err)"
            )
            return
        held = json.loads(ready.read_text())
        step["figures"]["held MiB"] = held["held_mib"]
        step["figures"]["free MiB"] = held["free_mib"]
        left = timeout - (time.monotonic() - t0)
        argv = verify_argv(out, "fault-gpu-held", f"cuda{n}", mnist, "--no-training")
        run_step(step, argv, out, left, child_env())
        figures = step["figures"]
        judge_verify(step, out)
        step["figures"] = {**figures, **step["figures"]}
    finally:
        kill_group(hog)
        hog_log.close()


# ------------------------------------------------------------------ peer to peer


def p2p_action(meta: dict[str, Any], out: Path) -> Action:
    """The pass run's peer-to-peer result (a check whose id names p2p), read from its report.

    verify --require-gpu runs distributed.torch_p2p (issue 21): a pass report without it
    checked no peer-to-peer copy, and the step fails. On a one-GPU machine its message must
    say there is nothing to compare.
    """

    def act(step: dict[str, Any], timeout: float) -> None:
        step["command"] = "(reads pass.json)"
        report = _read_json(out / "pass.json")
        found = [
            c for cat in report.get("categories", []) for c in cat.get("checks", [])
            if "p2p" in str(c.get("id", ""))
        ]  # fmt: skip
        if not report:
            step.update(ok=False, note="no pass report to read")
        elif not found:
            step.update(ok=False, note="the pass run checked no peer-to-peer copy (no p2p check)")
        else:
            c = found[0]
            step["figures"] = {"check": c["id"], "status": c.get("status")}
            step["note"] = str(c.get("message") or "")
            one = meta.get("gpu_count") == 1
            if one:
                step["ok"] = "one gpu" in step["note"].lower() and c.get("status") != "fail"
            else:
                step["ok"] = c.get("status") in ("pass", "warn")

    return act


def hold_gpu_memory(leave_mib: int, ready: Path) -> int:
    """Take all but ``leave_mib`` of the GPU's free memory (plain cudaMalloc through torch's
    allocator), say so in ``ready``, then wait to be killed."""
    import torch

    torch.cuda.init()
    free, _ = torch.cuda.mem_get_info()
    want = free - leave_mib * 2**20
    held, chunk, keep = 0, 2**30, []
    while want - held > 2**20 and chunk >= 2**20:
        size = min(chunk, want - held)
        try:
            keep.append(torch.empty(size, dtype=torch.uint8, device="cuda"))
            held += size
        except torch.cuda.OutOfMemoryError:
            chunk //= 2
    free_after, _ = torch.cuda.mem_get_info()
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"held_mib": held // 2**20, "free_mib": free_after // 2**20}))
    tmp.replace(ready)
    while True:
        time.sleep(60)


# ------------------------------------------------------------------ summary and fixtures


def finish(
    meta: dict[str, Any], steps: list[dict[str, Any]], out: Path, archive: str | None
) -> None:
    seeds = [s["seed_row"] for s in steps if s.get("seed_row")]
    whole = next((s for s in steps if s["name"] == "pass"), {})
    if whole.get("exit_code") is not None:  # the one whole cold verify, finished (pass or not)
        meta["cold_verify_seconds"] = whole.get("seconds")
    for s in steps:
        s.setdefault("ok", False)
        s.setdefault("command", "(not run)")
    fixtures = write_fixtures(meta, steps, out)
    results = write_bench_results(meta, steps, out)
    summary = paper.render_summary(meta, steps, seeds)
    if fixtures:
        summary += "\nFixtures (copy to tests/data/facts/):\n\n" + "".join(
            f"- fixtures/{p.name}\n" for p in fixtures
        )
    if results:
        summary += (
            f"\nBenchmark rows for the README: copy {results.name} to "
            f"bench/results/{paper.slug(meta['gpu_name'])}.json, then run "
            "`python bench/mnist.py --table`.\n"
        )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    plain = [{k: v for k, v in s.items() if not callable(v) and k != "seed_row"} for s in steps]
    (out / "steps.json").write_text(
        json.dumps({"meta": meta, "steps": plain, "seeds": seeds}, indent=2, default=str)
    )
    if archive:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(out, arcname=out.name)
    print(summary)
    print(f"gpu_acceptance: everything is in {out}")


def write_bench_results(
    meta: dict[str, Any], steps: list[dict[str, Any]], out: Path
) -> Path | None:
    """The seeds' bench runs as a bench/results/ file (what `bench/mnist.py --record` stores),
    so the README's table takes its GPU rows from this run's measurements."""
    import readme_table

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs = []
    for s in steps:
        if s["name"].startswith("bench-seed") and s.get("ok"):
            for row in _read_json(out / f"{s['name']}.json").get("runs", []):
                if row.get("ok"):
                    runs.append(readme_table.summarize(row, now))
    if not runs:
        return None
    machine = (
        f"{meta['gpu']}, NVIDIA driver {meta.get('driver')}, PyTorch {meta.get('torch')} "
        "(gpu_acceptance run)"
    )
    path = out / "bench-results.json"
    path.write_text(json.dumps({"machine": machine, "runs": runs}, indent=2) + "\n")
    return path


def write_fixtures(meta: dict[str, Any], steps: list[dict[str, Any]], out: Path) -> list[Path]:
    """Each verify step's saved facts and live verdicts, scrubbed: OUT/fixtures/<gpu>-<run>.json."""
    secrets = paper.host_secrets()
    secrets[str(out)] = "/tmp/out"
    written = []
    for s in steps:
        facts_path = out / "facts" / f"{s['name']}.json"
        report_path = out / f"{s['name']}.json"
        if not (facts_path.is_file() and report_path.is_file()):
            continue
        path = out / "fixtures" / f"{paper.slug(meta['gpu_name'])}-{s['name']}.json"
        leaked = paper.write_fixture(s["name"], facts_path, report_path, path, secrets)
        if leaked:  # never write a fixture that still names the host
            s["ok"] = False
            s["note"] = (s.get("note") or "") + f"; fixture not written: {len(leaked)} leak(s)"
            continue
        written.append(path)
    return written


if __name__ == "__main__":
    sys.exit(main())
