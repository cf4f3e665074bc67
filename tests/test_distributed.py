"""The distributed check run for real: torchrun with gloo ranks on this CPU, and `envcheck report`.

Each torchrun costs ~10-20 s on a small machine (two interpreters import torch), so sizes and
iterations are the smallest that still exercise a real all-reduce.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, clean_env, run_envcheck

from envcheck.checks.distributed import nccl_mismatch
from envcheck.distributed import FAULT_ENV
from envcheck.distributed.bandwidth import algbw_gbps, bus_factor, busbw_gbps, parse_sizes
from envcheck.distributed.launch import locked_nccl, run_local
from envcheck.distributed.ranks import rank_env
from envcheck.errors import EnvcheckError
from envcheck.report.json_report import SCHEMA_PATH

pytest.importorskip("torch")
# torchrun's process handling (sessions, signals) and these fault hooks are POSIX
pytestmark = pytest.mark.skipif(os.name != "posix", reason="torchrun runs here on POSIX only")
SMALL = [4096, 256 * 1024]


LEFT_BEHIND = ("envcheck-dist-", "torchelastic_", "envcheck-")


def left_in(folder: Path) -> list[str]:
    """What a run left in its TMPDIR: envcheck's temp folders or torchrun's."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(LEFT_BEHIND))


@pytest.fixture(autouse=True)
def private_tmpdir(tmp_path_factory, monkeypatch):
    """Each test runs with a TMPDIR of its own, which must be empty of temp folders after."""
    folder = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again
    yield folder
    time.sleep(0.5)  # a rank whose launcher is gone ends itself within 0.2 s
    assert left_in(folder) == []


def _marked(marker: str) -> list[int]:
    """Processes whose environment holds ENVCHECK_TEST_MARK=marker (inherited by every rank)."""
    needle = f"ENVCHECK_TEST_MARK={marker}".encode()
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "environ").read_bytes():
                out.append(int(proc.name))
        except OSError:
            continue
    return out


def _gone(marker: str, within: float = 15.0) -> list[int]:
    """The marked processes still alive after up to ``within`` seconds (polled)."""
    deadline = time.monotonic() + within
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _marked(marker)


def test_bandwidth_follows_nccl_tests_definitions():
    assert algbw_gbps(10**9, 0.5) == 2.0
    # all-reduce moves 2(n-1)/n of the data over each rank's link
    assert bus_factor(8) == 1.75 and bus_factor(2) == 1.0 and bus_factor(1) == 0.0
    assert busbw_gbps(10**9, 1.0, 4) == 1.5
    assert parse_sizes("4K, 1M,8") == [4096, 2**20, 8]
    for bad in ("3", "1X", "", "-4K"):
        with pytest.raises(ValueError):
            parse_sizes(bad)


def test_locked_nccl_is_what_py_rattler_reads_from_the_lock():
    rattler = pytest.importorskip("rattler")
    lock = rattler.LockFile.from_path(REPO / "pixi.lock")
    for name, env in lock.environments():
        want = sorted(
            {
                str(r.version)
                for plat in env.platforms()
                if str(plat.subdir) == "linux-64"
                for r in env.conda_repodata_records_for_platform(plat)
                if r.name.normalized == "nccl"
            }
        )
        got = locked_nccl({"PIXI_PROJECT_ROOT": str(REPO), "PIXI_ENVIRONMENT_NAME": name})
        if sys.platform == "linux" and os.uname().machine == "x86_64":
            assert got["versions"] == want, name
    cuda = locked_nccl({"PIXI_PROJECT_ROOT": str(REPO), "PIXI_ENVIRONMENT_NAME": "cuda12"})
    loaded = ".".join(cuda["versions"][0].split(".")[:3])  # as torch.cuda.nccl.version() says
    assert nccl_mismatch({"nccl_version": loaded, "lock_nccl": cuda}) is None
    other = nccl_mismatch({"nccl_version": "2.19.3", "lock_nccl": cuda})
    assert other == f"torch loads NCCL 2.19.3 but the lock holds nccl {cuda['versions'][0]}"
    assert nccl_mismatch({"nccl_version": None, "lock_nccl": cuda}) is None  # CPU build


def test_rank_env_reads_torchrun_then_slurm_variables():
    tr = rank_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "1",
                   "MASTER_ADDR": "n1", "MASTER_PORT": "29500"})  # fmt: skip
    assert (tr.rank, tr.world_size, tr.local_rank, tr.node_rank, tr.launcher) == (
        3, 8, 1, 1, "torchrun")  # fmt: skip
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2"}
    sr = rank_env({**slurm, "MASTER_ADDR": "n1", "MASTER_PORT": "29500"})
    assert (sr.rank, sr.world_size, sr.local_rank, sr.node_rank, sr.launcher) == (
        5, 8, 1, 2, "srun")  # fmt: skip
    with pytest.raises(EnvcheckError, match="MASTER_ADDR"):
        rank_env(slurm)
    with pytest.raises(EnvcheckError, match="not started by torchrun or srun"):
        rank_env({})


def test_worker_outside_a_launcher_is_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "envcheck.distributed"],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "torchrun" in proc.stderr


def test_two_gloo_ranks_under_one_torchrun_all_reduce_exactly():
    r = run_local(2, "gloo", SMALL, iters=2, timeout=150)
    assert r["ok"], r.get("failure") or r.get("log_tail")
    assert (r["world_size"], r["backend"], r["nodes"], r["launcher"]) == (2, "gloo", 1, "torchrun")
    assert [x["rank"] for x in r["ranks"]] == [0, 1]
    assert [s["bytes"] for s in r["sizes"]] == SMALL
    for i, s in enumerate(r["sizes"]):
        assert s["exact"]
        mean = sum(rank["sizes"][i]["seconds"] for rank in r["ranks"]) / 2
        assert s["seconds"] == pytest.approx(mean)
        assert s["algbw_gbps"] == pytest.approx(s["bytes"] / mean / 1e9)
        assert s["busbw_gbps"] == pytest.approx(s["algbw_gbps"] * bus_factor(2))


def test_two_torchrun_nodes_meet_at_a_c10d_rendezvous(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=envcheck-test",
           "--max-restarts=0", "-m", "envcheck.distributed", "--out", str(out),
           "--sizes", "4K", "--iters", "2", "--timeout", "90"]  # fmt: skip
    # torchrun run by hand makes torchelastic_* folders in TMPDIR and leaves them
    own = tmp_path / "torchrun-tmp"
    own.mkdir()
    env = clean_env(PYTHONPATH=str(REPO), TMPDIR=str(own))
    nodes = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        logs = [n.communicate(timeout=180)[0].decode(errors="replace") for n in nodes]
    finally:
        for n in nodes:
            if n.poll() is None:
                n.terminate()
                n.wait(30)
    assert [n.returncode for n in nodes] == [0, 0], logs
    r = json.loads(out.read_text())
    assert r["ok"] and r["world_size"] == 2 and r["nodes"] == 2
    assert sorted(x["node_rank"] for x in r["ranks"]) == [0, 1]
    assert "envcheck.distributed: PASS" in "".join(logs)


def test_a_dying_rank_is_a_fail_naming_it():
    start = time.monotonic()
    r = run_local(2, "gloo", [4096], iters=1, timeout=120, extra_env={FAULT_ENV: "die:1"})
    assert time.monotonic() - start < 100  # found by the launcher, not by a timeout
    assert not r["ok"]
    assert r["failure"]["ranks"] == [1]
    assert "rank 1" in r["failure"]["cause"] and "SIGKILL" in r["failure"]["cause"]


def test_a_hanging_rank_is_a_fail_naming_it_before_the_launcher_limit():
    r = run_local(2, "gloo", [4096], iters=1, timeout=60, extra_env={FAULT_ENV: "hang:1"})
    assert not r["ok"]
    assert r["launcher_seconds"] < 60  # rank 0 gave up and named rank 1 (ranks' limit 30 s)
    f = r["failure"]
    assert f["ranks"] == [1]
    assert "rank 1" in f["cause"] and "stopped after 'process group initialisation'" in f["cause"]
    assert "all-reduce of 4 KiB" in f["cause"] and "GLOO_SOCKET_IFNAME" in f["fix"]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_launcher_timeout_ends_torchrun_and_every_rank():
    # a 6 s limit: torchrun is stopped while its ranks still import torch or hang
    mark = {FAULT_ENV: "hang:1", "ENVCHECK_TEST_MARK": "timeout"}
    r = run_local(2, "gloo", [4096], iters=1, timeout=6, extra_env=mark)
    assert not r["ok"] and r["failure"]["message"] == "no result within 6 s"
    # a rank whose torchrun is gone ends itself within 0.2 s (more on a loaded machine)
    assert _gone("timeout") == []


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_ctrl_c_during_the_verify_probe_ends_torchrun_and_every_rank():
    code = (  # as envcheck runs it: signals handled, so the probe gets to clean up
        "from envcheck import interrupts\nfrom envcheck.runner import run_probe\n"
        "with interrupts.handled():\n"
        "    run_probe('envcheck.distributed.launch:probe', {'gpus': 0, 'timeout': 120})"
    )
    env = clean_env(PYTHONPATH=str(REPO), ENVCHECK_TEST_MARK="ctrlc", **{FAULT_ENV: "hang:1"})
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env)
    try:
        deadline = time.monotonic() + 90
        while len(_marked("ctrlc")) < 5 and time.monotonic() < deadline:  # ranks are up
            time.sleep(0.5)
        assert len(_marked("ctrlc")) >= 5  # parent, worker, torchrun, 2 ranks
        parent.send_signal(signal.SIGINT)
        assert parent.wait(30) != 0
        assert _gone("ctrlc") == []
    finally:
        for pid in _marked("ctrlc"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two real verify reports (a passing cpu node, a failing cuda12 node) and bad files."""
    d = tmp_path_factory.mktemp("fleet")
    tmpdir = tmp_path_factory.mktemp("fleet-tmpdir")
    common = ("verify", "--framework", "torch", "--no-training")
    env = clean_env(TMPDIR=str(tmpdir))
    ok = run_envcheck(*common, "--expect", "cpu", "--json", str(d / "node1.json"), env=env)
    bad = run_envcheck(*common, "--expect", "cuda12", "--json", str(d / "node2.json"), env=env)
    assert left_in(tmpdir) == []  # verify's distributed check cleaned up after itself
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert bad.returncode == 1, bad.stdout + bad.stderr
    (d / "garbage.json").write_text("{not json")
    r = run_local(2, "gloo", [4096], iters=1, timeout=150)  # JSON, but not a verify report
    (d / "other.json").write_text(json.dumps(r))
    with (d / "huge.json").open("wb") as f:
        f.truncate(17 * 2**20)  # sparse: the bound refuses it before reading
    (d / "adir.json").mkdir()
    tampered = json.loads((d / "node1.json").read_text())
    tampered["categories"][0]["checks"][0]["status"] = "fine"
    (d / "tampered.json").write_text(json.dumps(tampered))
    return d


def test_verify_runs_the_distributed_check_with_two_gloo_ranks(fleet):
    report = json.loads((fleet / "node1.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA_PATH.read_text()))
    cat = next(c for c in report["categories"] if c["name"] == "distributed")
    check = cat["checks"][0]
    assert check["id"] == "distributed.torch" and check["status"] == "pass"
    assert [d["device"].split(" (")[0] for d in check["devices"]] == ["rank 0", "rank 1"]
    assert check["figures"]["backend"] == "gloo" and check["figures"]["world_size"] == 2
    assert all(s["busbw_gbps"] > 0 for s in check["figures"]["sizes"])
    failing = json.loads((fleet / "node2.json").read_text())
    dist = next(c for c in failing["categories"] if c["name"] == "distributed")["checks"][0]
    # it did not run (no GPU): its own state, grouped under the root causes it follows from
    assert dist["status"] == "not_run" and "GPU expected" in dist["message"]
    assert dist["follows"] and set(dist["follows"]) <= set(failing["root_causes"])


def test_report_merges_machines_and_refuses_non_reports(fleet, tmp_path):
    summary = tmp_path / "summary.md"
    files = ["node1.json", "node2.json", "garbage.json", "other.json", "huge.json", "adir.json",
             "tampered.json"]  # fmt: skip
    proc = run_envcheck(
        "report",
        *(str(fleet / f) for f in files),
        str(fleet / "missing.json"),
        "--junit",
        str(tmp_path / "fleet.xml"),
        env=clean_env(GITHUB_STEP_SUMMARY=str(summary), COLUMNS="200"),
    )
    assert proc.returncode == 1
    refused = proc.stderr.strip().splitlines()
    assert len(refused) == 6 and all(ln.startswith("envcheck: refused ") for ln in refused)
    expected = (("garbage", "not JSON"), ("other", "not an envcheck verify report"),
                ("huge", "more than the 16777216 a report"), ("adir", "is a folder"),
                ("missing", "does not exist"), ("tampered", "not a valid Status"))  # fmt: skip
    for name, why in expected:
        assert any(f"{name}.json" in ln and why in ln for ln in refused), (name, refused)
    assert "Traceback" not in proc.stderr + proc.stdout
    out = proc.stdout
    assert "node1" in out and "node2" in out and "FAILED: 1 of 2 machine(s): node2" in out
    assert "node2 build.torch: PyTorch is a CPU-only build" in out
    md = summary.read_text()
    assert "1 of 2 machine(s) failed" in md and "| ✅ `node1` |" in md and "| ❌ `node2` |" in md
    assert "`distributed.torch`" in md
    xml = (tmp_path / "fleet.xml").read_text()
    xmlschema = pytest.importorskip("xmlschema")
    xmlschema.XMLSchema(str(SCHEMA_PATH.with_name("junit.xsd"))).validate(xml)
    assert 'name="node1/distributed"' in xml and 'classname="envcheck.node2.build"' in xml


def test_report_of_passing_machines_exits_zero_and_of_no_report_fails(fleet):
    ok = run_envcheck("report", str(fleet / "node1.json"))
    assert ok.returncode == 0 and "PASSED: 1 machine(s)" in ok.stdout
    none = run_envcheck("report", str(fleet / "garbage.json"))
    assert none.returncode == 1
    assert none.stderr.strip().splitlines()[-1].startswith("envcheck: error: none of the 1 file")
    assert os.path.exists(fleet / "node1.json")
