"""The GPU's own health (issue 21): every fault the stand-in NVML (tests/data/fake_nvml.c)
plays, read for real by verify's NVML probe through nvidia-ml-py and through the ctypes
fallback, and judged by envcheck.checks.health. Plus the peer-to-peer integrity check on the
CPU, and health in doctor and the fleet report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAKE_NVML_C, clean_env, needs_cpu_torch, run_envcheck

from envcheck.checks import REGISTRY, Options
from envcheck.checks import health as H
from envcheck.checks.p2p import judge_p2p
from envcheck.checks.registry import PROBES
from envcheck.doctor.judge import gpu_health
from envcheck.doctor.render import machine_lines
from envcheck.model import Status
from envcheck.profiles import PROFILES
from envcheck.report.fleet import Machine, render, to_markdown
from envcheck.runner import ProbeOutcome, run_probe
from envcheck.verify import verify

TESTS = str(Path(__file__).resolve().parent)
FAKE_VARS = (
    "FAKE_NVML_GPUS FAKE_NVML_ECC FAKE_NVML_ECC_MODE FAKE_NVML_REMAP FAKE_NVML_RETIRED "
    "FAKE_NVML_THROTTLE FAKE_NVML_PCIE FAKE_NVML_PERSISTENCE FAKE_NVML_UNSUPPORTED "
    "FAKE_NVML_LOST FAKE_NVML_INIT_RC"
).split()


@pytest.fixture(scope="session")
def fake_nvml_old_dir(tmp_path_factory) -> Path:
    """The stand-in NVML as an older driver: no row remapper, no ClocksEventReasons symbol."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not sys.platform.startswith("linux"):
        pytest.skip("needs a C compiler on Linux to build the stand-in NVML library")
    out = tmp_path_factory.mktemp("nvml-old")
    subprocess.run(
        [cc, "-shared", "-fPIC", "-DFAKE_NVML_OLD_DRIVER", "-o", str(out / "libnvidia-ml.so.1"),
         str(FAKE_NVML_C)],
        check=True,
    )  # fmt: skip
    return out


@pytest.fixture(params=["nvidia-ml-py", "ctypes"])
def nvml_path(request, without_nvidia_ml_py) -> tuple[str, list[str]]:
    """Both NVML paths: nvidia-ml-py's pynvml (loads the stand-in too), and the fallback."""
    pytest.importorskip("pynvml") if request.param == "nvidia-ml-py" else None
    return request.param, without_nvidia_ml_py if request.param == "ctypes" else []


@pytest.fixture
def read_nvml(fake_nvml_dir, nvml_path, monkeypatch):
    """Run verify's NVML probe (a subprocess) against the stand-in playing ``env``."""
    binding, extra = nvml_path

    def read(lib_dir: Path | None = None, **env: str) -> dict:
        for var in FAKE_VARS:
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("LD_LIBRARY_PATH", str(lib_dir or fake_nvml_dir))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        outcome = run_probe(PROBES["nvml"].target, {}, 60, extra_path=extra)
        assert outcome.ok, outcome.describe_failure()
        assert outcome.data["available"] is True and outcome.data["binding"] == binding
        return outcome.data

    return read


def judged(nvml: dict, load: dict | None = None) -> dict:
    """aspect -> the check result verify reports."""
    return {a: H.aspect_result(a, v) for a, v in H.judge_machine(nvml, load).items()}


def test_a_healthy_gpu_passes_and_an_idle_link_is_not_judged(read_nvml):
    nvml = read_nvml()
    h = nvml["gpus"][0]["health"]
    assert h["ecc_errors"] == dict.fromkeys(
        ("volatile_corrected", "volatile_uncorrected", "aggregate_corrected",
         "aggregate_uncorrected"), 0
    )  # fmt: skip
    assert h["pcie"] == {"gen": 5, "width": 16, "max_gen": 5, "max_width": 16}
    assert h["temperature_c"] == 41 and h["power_w"] == 95.1 and h["power_limit_w"] == 700.0
    # an H200 has a row remapper, not page retirement: that query is unsupported, no error
    assert h["unsupported"] == ["retired_pages"] and h["errors"] == {}
    results = judged(nvml)
    assert {a: r.status for a, r in results.items()} == {
        "ecc": Status.PASS,
        "retired_memory": Status.PASS,
        "clocks": Status.PASS,
        "pcie": Status.SKIP,
        "persistence": Status.PASS,
        "temperature_power": Status.PASS,
    }
    assert "links train down at idle" in results["pcie"].message
    assert "41 °C (slowdown at 87 °C), 95.1 W of 700.0 W" in results["temperature_power"].message
    assert results["clocks"].devices[0].figures["under_load"] is False


# (fake NVML variables, aspect, status, words in the message, words in the fix)
FAULTS = [
    ({"FAKE_NVML_ECC": "0,2,0,2"}, "ecc", Status.FAIL, "2 uncorrectable ECC error(s) since",
     "reset the GPU / drain the node"),
    ({"FAKE_NVML_ECC": "0,0,0,3"}, "ecc", Status.FAIL, "3 uncorrectable ECC error(s) in the "
     "GPU's lifetime", "nvidia-smi -p 1"),
    ({"FAKE_NVML_ECC": "900000,0,900000,0"}, "ecc", Status.WARN, "900000 corrected ECC errors "
     "since the driver loaded", "dcgmi diag -r 3"),
    ({"FAKE_NVML_ECC_MODE": "0"}, "ecc", Status.SKIP, "ECC is switched off", None),
    ({"FAKE_NVML_REMAP": "0,1,1,0"}, "retired_memory", Status.FAIL, "a row remap is pending",
     "reset the GPU / drain the node"),
    ({"FAKE_NVML_REMAP": "3,7,0,1"}, "retired_memory", Status.FAIL, "a row remap failed; 3 row(s) "
     "remapped for corrected, 7 for uncorrectable", "must be replaced"),
    ({"FAKE_NVML_REMAP": "2,1,0,0"}, "retired_memory", Status.PASS, "no remap pending or failed",
     None),
    ({"FAKE_NVML_RETIRED": "4,1,1"}, "retired_memory", Status.FAIL, "page retirement pending; 4 "
     "page(s) retired", "reset the GPU / drain the node"),
    ({"FAKE_NVML_RETIRED": "4,1,0"}, "retired_memory", Status.PASS, "no retirement pending", None),
    ({"FAKE_NVML_THROTTLE": "0x48"}, "clocks", Status.FAIL, "HW thermal slowdown", "cooling"),
    ({"FAKE_NVML_THROTTLE": "0x88"}, "clocks", Status.FAIL, "HW power brake", "power supplies"),
    ({"FAKE_NVML_THROTTLE": "0x8"}, "clocks", Status.FAIL, "HW slowdown", "power delivery"),
    ({"FAKE_NVML_THROTTLE": "0x20"}, "clocks", Status.WARN, "thermal slowdown (software)",
     "airflow"),
    ({"FAKE_NVML_THROTTLE": "0x7"}, "clocks", Status.PASS, "idle, application clocks setting, "
     "power cap (software)", None),
    ({"FAKE_NVML_PCIE": "1,4,5,16"}, "pcie", Status.SKIP, "Gen1 x4 at idle (can do Gen5 x16)",
     None),
    ({"FAKE_NVML_PERSISTENCE": "0"}, "persistence", Status.WARN, "persistence mode is off",
     "nvidia-persistenced"),
    ({"FAKE_NVML_LOST": "nvmlDeviceGetTotalEccErrors"}, "ecc", Status.FAIL,
     "NVML says the GPU is lost", "fell off the bus"),
]  # fmt: skip


@pytest.mark.parametrize("env,aspect,status,message,fix", FAULTS)
def test_each_fault_is_judged_through_both_nvml_paths(read_nvml, env, aspect, status, message, fix):
    nvml = read_nvml(**env)
    result = judged(nvml)[aspect]
    assert result.status is status, result
    assert message in result.message
    assert result.devices[0].status is status
    if fix:
        assert fix in result.fix and result.cause.startswith("GPU 0: ")
    others = [r for a, r in judged(nvml).items() if a != aspect and a != "pcie"]
    # one fault, one verdict: every other aspect still passes (ECC errors do not fail the
    # clocks); the GPU-lost fault is the one query that failed, the rest still answer
    assert all(r.status is Status.PASS for r in others), others


def test_every_query_unsupported_is_not_supported_never_a_failure(read_nvml):
    nvml = read_nvml(FAKE_NVML_UNSUPPORTED="all")
    h = nvml["gpus"][0]["health"]
    assert h["errors"] == {}
    assert set(h["unsupported"]) == {
        "ecc_mode", "ecc_errors", "remapped_rows", "retired_pages", "persistence_mode",
        "clock_event_reasons", "pcie", "temperature", "power",
    }  # fmt: skip
    for aspect, result in judged(nvml).items():
        assert result.status is Status.SKIP, (aspect, result)
        assert result.cause is None


def test_an_older_driver_without_the_newer_queries_reads_as_not_supported(
    read_nvml, fake_nvml_old_dir
):
    nvml = read_nvml(fake_nvml_old_dir, FAKE_NVML_THROTTLE="0x48")
    h = nvml["gpus"][0]["health"]
    assert h["remapped_rows"] is None and "remapped_rows" in h["unsupported"]
    assert h["errors"] == {}
    # the clock reasons come from the query's older name, which such drivers export
    assert h["clock_event_reasons"] == 0x48
    results = judged(nvml)
    assert results["retired_memory"].status is Status.SKIP
    assert results["clocks"].status is Status.FAIL


def test_every_gpu_is_judged_on_its_own(read_nvml):
    nvml = read_nvml(FAKE_NVML_GPUS="3", FAKE_NVML_ECC="0,1,0,1")
    result = judged(nvml)["ecc"]
    assert [d.device.split()[:2] for d in result.devices] == [["GPU", "0"], ["GPU", "1"],
                                                              ["GPU", "2"]]  # fmt: skip
    assert result.message.startswith("GPU 0, GPU 1, GPU 2: 1 uncorrectable")


def test_readings_under_load_judge_clocks_link_and_errors_counted_meanwhile(
    fake_nvml_dir, nvml_path, monkeypatch
):
    """The sampling thread reads while the load runs: a GPU that throttles, runs its link at
    Gen1 x4 and counts corrected errors only while loaded is caught, and named as such."""
    binding, extra = nvml_path
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    monkeypatch.setenv("FAKE_NVML_PCIE", "1,4,5,16")  # a degraded link stays degraded
    idle = run_probe(PROBES["nvml"].target, {}, 60, extra_path=extra).data
    args = {
        "during": {"FAKE_NVML_THROTTLE": "0x44"},  # power cap + HW thermal while loaded
        "leave": {"FAKE_NVML_ECC": "3,0,3,0"},  # errors counted during the load stay counted
        # torch names the GPU by its bare UUID; NVML says GPU-<uuid>
        "uuids": ["00000000-1111-2222-3333-444444444444"],
    }
    outcome = run_probe("probes_for_tests:health_under_load", args, 60, [*extra, TESTS])
    assert outcome.ok, outcome.describe_failure()
    load = outcome.data
    assert load["available"] is True and load["binding"] == binding
    (g,) = load["gpus"]
    assert g["loaded"] is True and g["samples"] >= 3
    assert 0x40 & g["clock_event_reasons"] and g["clock_event_reason_samples"]["0x40"] >= 1
    assert g["pcie"] == {"gen": 1, "width": 4, "max_gen": 5, "max_width": 16}
    assert g["ecc_corrected_during_load"] == 3
    results = judged(idle, load)
    assert results["clocks"].status is Status.FAIL
    assert "HW thermal slowdown in" in results["clocks"].message
    assert "under load" in results["clocks"].message
    assert results["pcie"].status is Status.WARN
    assert "Gen1 x4 under load, below the Gen5 x16" in results["pcie"].message
    assert results["ecc"].status is Status.WARN
    assert "3 corrected ECC error(s) during the load" in results["ecc"].message
    assert results["temperature_power"].devices[0].figures["under_load"] is True


@needs_cpu_torch
def test_the_kernels_probe_load_runs_its_time_under_the_sampler(fake_nvml_dir, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    args = {"seconds": 1.0}
    outcome = run_probe("probes_for_tests:torch_load_under_sampling", args, 120, [TESTS])
    assert outcome.ok, outcome.describe_failure()
    d = outcome.data
    assert d["available"] is True and 1.0 <= d["seconds"] < 30
    (g,) = d["gpus"]
    assert g["samples"] >= 2 and g["loaded"] is None  # no UUIDs given: which GPU ran is unknown


def test_a_link_trained_down_under_load_warns_and_idle_is_not_judged(read_nvml):
    idle = read_nvml(FAKE_NVML_PCIE="1,16,5,16")
    uuid = idle["gpus"][0]["uuid"]
    loaded = {"index": 0, "uuid": uuid, "loaded": True, "samples": 20,
              "pcie": {"gen": 1, "width": 4, "max_gen": 5, "max_width": 16},
              "clock_event_reasons": 0x1, "clock_event_samples": 20,
              "ecc_corrected_during_load": 2}  # fmt: skip
    load = {"available": True, "gpus": [loaded]}
    results = judged(idle, load)
    assert results["pcie"].status is Status.WARN
    assert "Gen1 x4 under load, below the Gen5 x16" in results["pcie"].message
    assert "x16 slot" in results["pcie"].fix
    assert results["ecc"].status is Status.WARN
    assert "2 corrected ECC error(s) during the load" in results["ecc"].message
    # a GPU that CUDA_VISIBLE_DEVICES hid was not loaded: its idle link is not judged
    hidden = {"available": True, "gpus": [{**loaded, "loaded": False}]}
    assert judged(idle, hidden)["pcie"].status is Status.SKIP


def test_persistence_is_a_linux_matter_and_the_corrected_rate_needs_an_hour():
    h = {"persistence_mode": 0, "unsupported": [], "errors": {}}
    assert H.judge_persistence(h, "win32").status is Status.SKIP
    assert H.judge_persistence(h, "linux").status is Status.WARN
    counts = {"ecc_mode": 1, "ecc_errors": {"volatile_corrected": 9, "volatile_uncorrected": 0,
              "aggregate_corrected": 9, "aggregate_uncorrected": 0}}  # fmt: skip
    # 9 errors 10 minutes after boot: no rate yet (judged over at least an hour)
    assert H.judge_ecc(counts, uptime_s=600).status is Status.PASS
    counts["ecc_errors"]["volatile_corrected"] = 11
    assert H.judge_ecc(counts, uptime_s=600).status is Status.WARN
    # 11 in 2 hours: 5.5/h, under the rate
    verdict = H.judge_ecc(counts, uptime_s=7200)
    assert verdict.status is Status.PASS and verdict.figures["corrected_per_hour_since_boot"] == 5.5


def test_recorded_facts_of_the_wrong_type_are_no_verdict_and_no_crash():
    odd = {"gpus": [{"index": 0, "uuid": "GPU-x", "health": {
        "ecc_mode": "on", "ecc_errors": {"volatile_uncorrected": "2"}, "remapped_rows": [1],
        "clock_event_reasons": "0x40", "pcie": "Gen5", "persistence_mode": True,
        "unsupported": "all", "errors": ["x"]}}],
        "system": "linux", "uptime_s": "long"}  # fmt: skip
    for aspect, result in judged(odd).items():
        assert result.status in (Status.PASS, Status.SKIP), (aspect, result)


def _replay_health(nvml: dict, torch_kernels: dict | None = None):
    recorded = {"nvml": ProbeOutcome("nvml", True, data=nvml)}
    frameworks: tuple[str, ...] = ()
    if torch_kernels is not None:
        frameworks = ("torch",)
        recorded["torch.facts"] = ProbeOutcome("t", True, data={"cuda_available": True})
        recorded["torch.kernels"] = ProbeOutcome("t", True, data=torch_kernels)
    # devices.gpus too: it reports what NVML said when there is no GPU health to report
    checks = [c for c in REGISTRY if c.category == "health" or c.check_id == "devices.gpus"]
    report, _ = verify(PROFILES["cuda12"], frameworks, True, Options(), recorded=recorded,
                       checks=checks)  # fmt: skip
    return {c.name: c for c in report.checks if c.category == "health"}, report


def test_verify_replays_health_into_a_report_json_and_junit_accept(read_nvml):
    nvml = read_nvml(FAKE_NVML_REMAP="0,1,1,0", FAKE_NVML_PCIE="2,16,5,16")
    uuid = nvml["gpus"][0]["uuid"]
    load = {"available": True, "gpus": [{"index": 0, "uuid": uuid, "loaded": True, "samples": 9,
            "pcie": {"gen": 5, "width": 16, "max_gen": 5, "max_width": 16},
            "clock_event_reasons": 0x4, "clock_event_samples": 9}]}  # fmt: skip
    checks, report = _replay_health(nvml, {"devices": [], "load_health": load})
    assert checks["retired_memory"].status is Status.FAIL
    assert checks["pcie"].status is Status.PASS  # Gen2 at idle, Gen5 under load: fine
    assert checks["clocks"].status is Status.PASS
    assert report.exit_code == 1
    categories = report.to_dict()["categories"]
    assert [c["name"] for c in categories] == [
        "devices",
        "health",
    ]  # validated by the autouse fixture
    # without torch the clocks and the link are read at idle only, and say so
    checks, _ = _replay_health(nvml)
    assert checks["pcie"].status is Status.SKIP
    assert checks["clocks"].figures["not_under_load"] == "no torch GPU load in this run"


def test_without_a_driver_there_is_no_health_to_report():
    """A CPU machine's report has no health rows (devices.gpus says there is no driver)."""
    nvml = {"available": False, "reason": "no_driver", "error": "NVML Shared Library Not Found"}
    checks, report = _replay_health(nvml)
    assert checks == {} and [c.check_id for c in report.checks] == ["devices.gpus"]
    checks, _ = _replay_health({"available": True, "gpus": [], "driver_version": "580.159.04",
                                "cuda_driver_version": "13.0"})  # fmt: skip
    assert checks == {}


def test_a_health_reading_that_broke_outright_warns_and_names_the_error():
    broke = {"unsupported": [], "errors": {"health": "TypeError: bad answer"}}
    nvml = {"available": True, "system": "linux",
            "gpus": [{"index": 0, "uuid": "GPU-1", "health": broke}]}  # fmt: skip
    for result in judged(nvml).values():
        assert result.status is Status.WARN and "TypeError: bad answer" in result.message


# --- doctor and the fleet report -----------------------------------------------------------


def test_doctor_names_a_bad_card_with_its_fix(read_nvml):
    nvml = read_nvml(FAKE_NVML_GPUS="2", FAKE_NVML_REMAP="0,1,1,0")
    facts = {"platform": {"system": "linux", "machine": "x86_64", "subdir": "linux-64"},
             "nvml": nvml}  # fmt: skip
    health = gpu_health(nvml)
    assert {(h["gpu"], h["check"], h["status"]) for h in health if h["status"] == "fail"} == {
        (0, "health.retired_memory", "fail"),
        (1, "health.retired_memory", "fail"),
    }
    lines = machine_lines(facts, health)
    bad = [ln for ln in lines if ln.startswith("    health FAIL")]
    assert len(bad) == 2 and "reset the GPU / drain the node" in bad[0]
    assert "`nvidia-smi -r -i 0`" in bad[0] and "`nvidia-smi -r -i 1`" in bad[1]
    ok = machine_lines(facts | {"nvml": read_nvml()}, gpu_health(read_nvml()))
    assert "    health: ok (ECC, memory rows, clocks at idle, persistence)" in ok


def test_doctor_command_shows_health_from_the_stand_in_driver(
    fake_nvml_dir, without_nvidia_ml_py, tmp_path
):
    """`envcheck doctor` itself (stdlib only: the ctypes path) reads and names the fault."""
    env = clean_env(LD_LIBRARY_PATH=str(fake_nvml_dir), PYTHONPATH=without_nvidia_ml_py[0],
                    FAKE_NVML_ECC="0,4,0,4", COLUMNS="200")  # fmt: skip
    proc = run_envcheck("doctor", "--json", str(tmp_path / "d.json"), env=env)
    assert "health FAIL: ECC memory errors: 4 uncorrectable ECC error(s)" in proc.stdout
    answer = json.loads((tmp_path / "d.json").read_text())
    assert answer["facts"]["nvml"]["binding"] == "ctypes"
    assert any(h["check"] == "health.ecc" and h["status"] == "fail" for h in answer["health"])


def _machine(name: str, nvml: dict) -> Machine:
    _, report = _replay_health(nvml)
    return Machine(name, Path(f"{name}.json"), report)


def test_the_fleet_report_lists_unhealthy_gpus_first(read_nvml):
    from rich.console import Console

    good = _machine("node-a", read_nvml())
    warm = _machine("node-b", read_nvml(FAKE_NVML_PERSISTENCE="0"))
    bad = _machine("node-c", read_nvml(FAKE_NVML_ECC="0,1,0,1"))
    console = Console(record=True, width=200)
    render([good, warm, bad], console)
    text = console.export_text()
    assert text.startswith("Unhealthy GPUs: 2\nFAIL node-c GPU 0 ")
    assert text.index("FAIL node-c GPU 0") < text.index("WARN node-b GPU 0")
    assert text.index("WARN node-b GPU 0") < text.index("envcheck report: 3 machine(s)")
    assert "health.ecc: 1 uncorrectable ECC error(s)" in text
    md = to_markdown([good, warm, bad], [])
    assert md.index("**Unhealthy GPUs: 2**") < md.index("| machine |")


# --- peer-to-peer, with the CPU as both ends ------------------------------------------------


@needs_cpu_torch
def test_p2p_copies_compare_every_byte_and_name_the_pair():
    import torch

    from envcheck.probes import p2p

    ok = p2p.run_pairs(torch, ["cpu", "cpu", "cpu"], 1 << 20)
    assert len(ok["pairs"]) == 3 * 2 * 2 and ok["hung"] is False
    assert all(r["wrong_bytes"] == 0 and r["copies"] == p2p.REPEATS for r in ok["pairs"])
    result = judge_p2p(ok)
    assert result.status is Status.PASS and len(result.devices) == 6
    assert "every byte right" in result.message

    def flips_one_bit(torch, src, dst, mode):  # a link that corrupts direct copies only
        out = p2p.copy_between(torch, src, dst, mode)
        if mode == "direct":
            out[777] ^= 0x10
        return out

    bad = p2p.run_pairs(torch, ["cpu", "cpu"], 1 << 20, copy=flips_one_bit)
    assert {r["wrong_bytes"] for r in bad["pairs"] if r["mode"] == "direct"} == {1}
    assert {r["first_wrong_offset"] for r in bad["pairs"] if r["mode"] == "direct"} == {777}
    result = judge_p2p(bad)
    assert result.status is Status.FAIL
    assert result.message == "peer-to-peer copies wrong between cpu[0] -> cpu[1], cpu[1] -> cpu[0]"
    assert "1 of 1048576 bytes differ after the direct copy" in result.cause
    assert "NCCL_P2P_DISABLE=1" in result.fix and "IOMMU" in result.fix


@needs_cpu_torch
def test_a_hung_copy_fails_naming_its_pair_within_the_deadline():
    import torch

    from envcheck.probes import p2p

    def never_ends(torch, src, dst, mode):
        time.sleep(30)

    start = time.monotonic()
    d = p2p.run_pairs(torch, ["cpu", "cpu", "cpu"], 1024, timeout=0.5, copy=never_ends)
    assert time.monotonic() - start < 10
    assert d["hung"] is True and len(d["pairs"]) == 1  # stops at the first: the context is wedged
    result = judge_p2p(d)
    assert result.status is Status.FAIL
    assert result.cause == "cpu[0] -> cpu[1]: the direct copy hung (no end after 0.5 s)"
    assert "NCCL_P2P_DISABLE=1" in result.fix


def test_one_gpu_has_nothing_to_compare():
    result = judge_p2p({"devices": ["cuda:0"], "pairs": [], "note": "one GPU, nothing to compare"})
    assert result.status is Status.SKIP and result.message == "one GPU, nothing to compare"


@needs_cpu_torch
def test_the_p2p_probe_on_a_machine_without_cuda_says_so():
    outcome = run_probe(PROBES["torch.p2p"].target, {}, 120)
    assert outcome.ok, outcome.describe_failure()
    assert outcome.data == {"devices": [], "pairs": [], "note": "no CUDA device"}


def test_facts_recorded_before_health_existed_skip_saying_so():
    old = {"available": True, "system": "linux", "gpus": [{"index": 0, "uuid": "GPU-1"}]}
    for result in judged(old).values():
        assert result.status is Status.SKIP and "no health facts recorded" in result.message


@needs_cpu_torch
def test_verify_runs_the_p2p_check_only_with_two_gpus_and_replays_its_facts():
    import torch

    from envcheck.probes import p2p

    def corrupts(torch, src, dst, mode):
        out = p2p.copy_between(torch, src, dst, mode)
        out[5] ^= 0xFF
        return out

    facts = p2p.run_pairs(torch, ["cpu", "cpu"], 4096, copy=corrupts)
    p2p_check = [c for c in REGISTRY if c.check_id == "distributed.torch_p2p"]

    def replay(device_count: int) -> object:
        recorded = {
            "torch.facts": ProbeOutcome("t", True, data={"cuda_available": True,
                                                          "device_count": device_count}),
            "torch.p2p": ProbeOutcome("t", True, data=facts),
        }  # fmt: skip
        report, _ = verify(PROFILES["cuda12"], ("torch",), True, Options(), recorded=recorded,
                           checks=p2p_check)  # fmt: skip
        (result,) = report.checks
        return result

    one = replay(1)
    assert one.status is Status.SKIP and one.message == "one GPU, nothing to compare"
    two = replay(2)
    assert two.status is Status.FAIL
    # wrong through host memory too: the fix is the hardware's, not NCCL_P2P_DISABLE
    assert "dcgmi diag -r 3" in two.fix
    assert two.devices[0].device == "cpu[0] -> cpu[1]"


def test_a_gpu_lost_while_loaded_fails_the_checks_that_read_it(
    fake_nvml_dir, nvml_path, monkeypatch
):
    binding, extra = nvml_path
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    idle = run_probe(PROBES["nvml"].target, {}, 60, extra_path=extra).data
    lost = "nvmlDeviceGetCurrentClocksEventReasons,nvmlDeviceGetCurrPcieLinkGeneration"
    args = {"during": {"FAKE_NVML_LOST": lost}, "uuids": [idle["gpus"][0]["uuid"]]}
    outcome = run_probe("probes_for_tests:health_under_load", args, 60, [*extra, TESTS])
    assert outcome.ok and outcome.data["binding"] == binding
    results = judged(idle, outcome.data)
    for aspect in ("clocks", "pcie"):
        assert results[aspect].status is Status.FAIL, results[aspect]
        assert results[aspect].message == "GPU 0: NVML says the GPU is lost"
        assert "fell off the bus" in results[aspect].fix


@pytest.mark.parametrize(
    "env",
    [
        {"FAKE_NVML_ECC": "5,2,9,3", "FAKE_NVML_REMAP": "1,2,1,1", "FAKE_NVML_THROTTLE": "0xC8",
         "FAKE_NVML_PCIE": "1,4,5,16", "FAKE_NVML_PERSISTENCE": "0", "FAKE_NVML_GPUS": "2"},
        {"FAKE_NVML_RETIRED": "7,2,1", "FAKE_NVML_UNSUPPORTED": "nvmlDeviceGetPowerUsage"},
    ],
)  # fmt: skip
def test_both_nvml_paths_gather_the_same_health_facts(
    fake_nvml_dir, without_nvidia_ml_py, monkeypatch, env
):
    pytest.importorskip("pynvml")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(fake_nvml_dir))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    via_pynvml = run_probe(PROBES["nvml"].target, {}, 60).data
    via_ctypes = run_probe(PROBES["nvml"].target, {}, 60, extra_path=without_nvidia_ml_py).data
    assert (via_pynvml["binding"], via_ctypes["binding"]) == ("nvidia-ml-py", "ctypes")
    assert [g["health"] for g in via_pynvml["gpus"]] == [g["health"] for g in via_ctypes["gpus"]]


def test_each_gpu_keeps_its_own_fix_through_json_into_the_fleet_report(read_nvml, tmp_path):
    from rich.console import Console

    from envcheck.report.fleet import load_report
    from envcheck.report.json_report import to_json

    nvml = read_nvml(FAKE_NVML_GPUS="2", FAKE_NVML_REMAP="0,1,1,0")
    nvml["gpus"][1]["health"]["remapped_rows"].update(pending=False, failed=True)  # replayed
    _, report = _replay_health(nvml)
    path = tmp_path / "node-d.json"
    path.write_text(to_json(report))
    machine = Machine("node-d", path, load_report(path))  # through the JSON and back
    console = Console(record=True, width=400)
    render([machine], console)
    text = console.export_text()
    gpu0 = next(ln for ln in text.splitlines() if ln.startswith("FAIL node-d GPU 0"))
    gpu1 = next(ln for ln in text.splitlines() if ln.startswith("FAIL node-d GPU 1"))
    assert "a row remap is pending" in gpu0 and "card must be replaced" not in gpu0
    assert "a row remap failed" in gpu1 and "card must be replaced" in gpu1
    assert "`nvidia-smi -r -i 0`" in gpu0 and "`nvidia-smi -r -i 1`" in gpu1
    devices = json.loads(path.read_text())["categories"][1]["checks"][1]["devices"]
    assert [d.get("fix") is not None for d in devices] == [True, True]
    passing = json.loads(path.read_text())["categories"][1]["checks"][0]["devices"][0]
    assert "fix" not in passing and "cause" not in passing  # only where a device has its own


def test_doctor_with_a_bare_python_names_a_bad_card(fake_nvml_dir, tmp_path):
    """`python -S`: doctor itself without site-packages (no rich), as before any install."""
    out = tmp_path / "doctor.json"
    code = (
        "import runpy, sys; sys.argv = ['envcheck', 'doctor', '--json', sys.argv[1]]\n"
        "runpy.run_module('envcheck', run_name='__main__')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": str(fake_nvml_dir),
           "FAKE_NVML_THROTTLE": "0x88"}  # fmt: skip
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(out)], cwd=Path(TESTS).parent,
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr
    assert "    health FAIL: clock event (throttle) reasons: HW power brake slowdown" in proc.stdout
    assert "┃" not in proc.stdout  # the plain renderer: rich was not importable
    answer = json.loads(out.read_text(encoding="utf-8"))
    assert [h["status"] for h in answer["health"] if h["check"] == "health.clocks"] == ["fail"]
