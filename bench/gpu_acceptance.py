"""envcheck's acceptance run on a real NVIDIA GPU: one output folder, one summary.md.

    bash bench/gpu_acceptance.sh MNIST_DIR [OUT_DIR]        # or: python3 bench/gpu_acceptance.py

From a checkout, with a Python that has a CUDA build of PyTorch, rich and numpy (nvidia-ml-py
optional, platformdirs not needed); no pixi, TensorFlow or network. Steps, each time-boxed:

  a. envcheck info --json
  b. envcheck verify --expect cudaN --framework torch --require-gpu (full), --json --junit
     --save-facts: must PASS
  c. bench/mnist.py --framework torch --device cuda --full --verify --json, seeds 0, 1, 2
  d. faults, each must FAIL with exit 1, a diagnosis (cause and fix) and no traceback:
     CUDA_VISIBLE_DEVICES=""; --expect of the wrong CUDA major; another process holding all but
     ~256 MiB of GPU memory (out of memory); CUDA_VISIBLE_DEVICES naming a GPU UUID that does
     not exist
  e. summary.md: status, exit code and figures of every step

Each verify's raw facts become fixtures in OUT/fixtures/<gpu>-<run>.json (host names, home
folder, user and GPU UUIDs scrubbed, with the live verdicts); copy them to tests/data/facts/
and tests/test_gpu_acceptance.py replays them. `--archive FILE` also packs OUT into a .tar.gz.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, no install needed
sys.path.insert(0, str(ROOT / "bench"))

import gpu_acceptance_report as paper  # noqa: E402

from envcheck.mnist.data import find_in_dir  # noqa: E402
from envcheck.probes import nvml  # noqa: E402

SEEDS = (0, 1, 2)
LEAVE_MIB = 256  # what the out-of-memory fault leaves free on the GPU
MADE_UP_UUID = "GPU-00000000-0000-0000-0000-000000000000"
# Per-step time boxes (seconds); the whole run is meant to take < 5 min on an H100/H200.
TIMEOUTS = {"info": 90, "verify": 240, "bench": 240, "fault": 180, "hog": 90}


# The whole run stops starting steps after this many seconds, so a device command with a
# 10-minute limit always ends with its summary written (--budget changes it).
BUDGET_S = 540


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
    if argv[:1] == ["hog"]:  # the out-of-memory fault's second process
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


def preflight(ns: argparse.Namespace) -> tuple[dict[str, Any], Path, Path]:
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
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise Abort("importing torch took over 120 s; check the Python and its disk") from None
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise Abort(f"{sys.executable} cannot import torch ({last}); use a Python with CUDA torch")
    version, cuda = probe.stdout.split()
    if cuda == "None":
        raise Abort(f"torch {version} is a CPU-only build; this script needs a CUDA build")
    out.mkdir(parents=True, exist_ok=True)
    (out / "facts").mkdir()
    gpu = facts["gpus"][0]
    meta = {
        "gpu": f"{len(facts['gpus'])}x {gpu['name']} ({gpu['memory_total_mib']} MiB)",
        "gpu_name": gpu["name"],
        "driver": facts.get("driver_version"),
        "driver_cuda": facts.get("cuda_driver_version"),
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
    """Run one step in its own process group, time-boxed; stdout/stderr to OUT/logs."""
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    step["command"] = " ".join(argv[1:]).replace(str(ROOT) + "/", "")
    left = DEADLINE[0] - time.monotonic()
    if left < 15:
        step.update(exit_code=None, seconds=None, traceback=False, note="not run: out of time")
        return
    timeout = min(timeout, left)
    start = time.monotonic()
    so = open(logs / f"{step['name']}.out", "w")
    se = open(logs / f"{step['name']}.err", "w")
    try:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=so, stderr=se, start_new_session=True
        )
        try:
            step["exit_code"] = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            step["exit_code"] = None
            step["note"] = f"timed out after {timeout:.0f} s"
        except BaseException:  # Ctrl-C, kill: end the step's whole process group first
            kill_group(proc)
            raise
    finally:
        so.close()
        se.close()
    step["seconds"] = round(time.monotonic() - start, 1)
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


DEADLINE = [float("inf")]  # monotonic time after which no step starts


def run_all(ns: argparse.Namespace) -> int:
    t0 = time.monotonic()
    DEADLINE[0] = t0 + ns.budget
    meta, mnist, out = preflight(ns)
    seeds = [int(s) for s in ns.seeds.split(",") if s.strip()]
    n = meta["cuda_major"]
    wrong = f"cuda{12 if n == 13 else 13}"
    steps: list[dict[str, Any]] = []
    seed_rows: list[dict[str, Any]] = []

    def new(name: str, title: str, expect: str, **kw: Any) -> dict[str, Any]:
        step = {"name": name, "title": title, "expect": expect, "note": "", "figures": {}, **kw}
        steps.append(step)
        return step

    try:
        # a. the environment report
        s = new("info", "a. envcheck info --json", "pass")
        argv = [sys.executable, "-m", "envcheck", "info", "--framework", "torch"]
        run_step(s, [*argv, "--json", str(out / "info.json")], out, TIMEOUTS["info"], child_env())
        s["ok"] = s["exit_code"] == 0 and not s["traceback"] and not s["note"]

        # b. the full verify on the GPU: must pass
        s = new("pass", f"b. verify --expect cuda{n} --require-gpu (full)", "pass")
        argv = verify_argv(out, "pass", f"cuda{n}", mnist, "--junit", str(out / "pass.xml"))
        run_step(s, argv, out, TIMEOUTS["verify"], child_env())
        judge_verify(s, out)

        # c. MNIST figures over the seeds (each: cold training, then a cold verify)
        for seed in seeds:
            s = new(f"bench-seed{seed}", f"c. bench/mnist.py --full --verify, seed {seed}", "pass")
            argv = [
                sys.executable,
                str(ROOT / "bench" / "mnist.py"),
                *("--framework", "torch", "--device", "cuda", "--full", "--verify"),
                *("--data-dir", str(mnist), "--offline", "--seed", str(seed)),
                *("--json", str(out / f"bench-seed{seed}.json")),
            ]
            run_step(s, argv, out, TIMEOUTS["bench"], child_env())
            row = paper.seed_figures(_read_json(out / f"bench-seed{seed}.json"))
            row["seed"] = seed
            seed_rows.append(row)
            s["figures"] = {
                "accuracy": _pct(row.get("test_accuracy")),
                "to 99% s": _round(row.get("time_to_99_seconds")),
                "cold verify s": _round(row.get("verify_wall_seconds")),
            }
            s["ok"] = s["exit_code"] == 0 and not s["traceback"] and not s["note"]
            if s["exit_code"] not in (0, None):
                s["note"] = f"bench exited {s['exit_code']} (training or verify failed)"

        # d. faults
        faults = [
            (
                "fault-hidden",
                'd. CUDA_VISIBLE_DEVICES=""',
                f"cuda{n}",
                {"CUDA_VISIBLE_DEVICES": ""},
                "every GPU is hidden",
                lambda c: "hides every gpu" in _text(c),
            ),
            (
                "fault-wrong-cuda",
                f"d. --expect {wrong} (wrong CUDA major)",
                wrong,
                {},
                f"the build is not CUDA {wrong[4:]}",
                lambda c: c["id"] == "build.torch" and f"expects cuda {wrong[4:]}" in _text(c),
            ),
            (
                "fault-unknown-uuid",
                f"d. CUDA_VISIBLE_DEVICES={MADE_UP_UUID}",
                f"cuda{n}",
                {"CUDA_VISIBLE_DEVICES": MADE_UP_UUID},
                "CUDA_VISIBLE_DEVICES names no GPU",
                lambda c: "names no gpu of this machine" in _text(c),
            ),
        ]
        for name, title, expect, env, wanted, looks_for in faults:
            s = new(name, title, "fail", wanted=wanted, looks_for=looks_for)
            argv = verify_argv(out, name, expect, mnist, "--no-training")
            run_step(s, argv, out, TIMEOUTS["fault"], child_env(**env))
            judge_verify(s, out)
        run_oom_fault(new, out, mnist, n)
    finally:
        meta["seconds"] = time.monotonic() - t0
        finish(meta, steps, seed_rows, out, ns.archive)
    return 0 if all(s["ok"] for s in steps) else 1


def run_oom_fault(new, out: Path, mnist: Path, n: int) -> None:
    """verify trains while another process holds all but ~LEAVE_MIB of the GPU's memory."""
    s = new(
        "fault-oom",
        f"d. another process holds all but {LEAVE_MIB} MiB of GPU memory",
        "fail",
        wanted="out of memory, with smaller batch / gradient accumulation / mixed precision",
        looks_for=lambda c: (
            "out of memory" in _text(c)
            and all(
                f in _text(c) for f in ("smaller batch", "gradient accumulation", "mixed precision")
            )
        ),
    )
    if DEADLINE[0] - time.monotonic() < 60:
        s.update(ok=False, exit_code=None, seconds=None, command="(not run)")
        s["note"] = "not run: out of time"
        return
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
        deadline = time.monotonic() + TIMEOUTS["hog"]
        while not ready.is_file() and hog.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not ready.is_file():
            s.update(ok=False, exit_code=None, seconds=None, command="(not run)")
            s["note"] = "the memory-holding process did not get ready (see logs/hog.err)"
            return
        held = json.loads(ready.read_text())
        s["figures"]["held MiB"] = held["held_mib"]
        s["figures"]["free MiB"] = held["free_mib"]
        run_step(
            s, verify_argv(out, "fault-oom", f"cuda{n}", mnist), out, TIMEOUTS["fault"], child_env()
        )
        figures = s["figures"]
        judge_verify(s, out)
        s["figures"] = {**figures, **s["figures"]}
    finally:
        kill_group(hog)
        hog_log.close()


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
    meta: dict[str, Any],
    steps: list[dict[str, Any]],
    seeds: list[dict[str, Any]],
    out: Path,
    archive: str | None,
) -> None:
    for s in steps:
        s.setdefault("ok", False)
        s.setdefault("command", "(not run)")
    fixtures = write_fixtures(meta, steps, out)
    summary = paper.render_summary(meta, steps, seeds)
    if fixtures:
        summary += "\nFixtures (copy to tests/data/facts/):\n\n" + "".join(
            f"- fixtures/{p.name}\n" for p in fixtures
        )
    (out / "summary.md").write_text(summary, encoding="utf-8")
    plain = [{k: v for k, v in s.items() if not callable(v)} for s in steps]
    (out / "steps.json").write_text(
        json.dumps({"meta": meta, "steps": plain, "seeds": seeds}, indent=2, default=str)
    )
    if archive:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(out, arcname=out.name)
    print(summary)
    print(f"gpu_acceptance: everything is in {out}")


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
