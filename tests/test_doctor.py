"""envcheck doctor: machine facts replayed against the committed pixi.lock.

The machine facts below are written by hand (no real machine of each kind was available); they
have the shape envcheck.doctor.facts gathers (NVML through envcheck.probes.nvml). Assertions
are properties of the answer (the CUDA line, the platform), not env names, so they hold when
the lock changes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envcheck.cli import main
from envcheck.doctor import archlists
from envcheck.doctor.facts import platform_facts
from envcheck.doctor.judge import diagnose_machine, is_cuda_row
from envcheck.doctor.workspace import read_workspace

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "pixi.lock"
WORKSPACE = read_workspace(LOCK)

SYSTEM = {"linux": ("linux", "x86_64"), "osx": ("darwin", "arm64"), "win": ("win32", "AMD64")}
P100 = ("Tesla P100-PCIE-16GB", "6.0")
V100 = ("Tesla V100-SXM2-32GB", "7.0")
A100 = ("NVIDIA A100-SXM4-80GB", "8.0")
RTX4090 = ("NVIDIA GeForce RTX 4090", "8.9")
H100 = ("NVIDIA H100 80GB HBM3", "9.0")
GH200 = ("NVIDIA GH200 480GB", "9.0")
B200 = ("NVIDIA B200", "10.0")
RTX5090 = ("NVIDIA GeForce RTX 5090", "12.0")
DRIVER_CUDA = {"470.256.02": "11.4", "535.247.01": "12.2", "550.163.01": "12.4"}
DRIVER_CUDA.update({"575.64.05": "12.9", "580.95.05": "13.0"})


def machine(subdir="linux-64", glibc="2.35", driver=None, gpus=(), mig=False):
    system = {"linux": "linux", "osx": "darwin", "win": "win32"}[subdir.split("-")[0]]
    arch = {"64": "x86_64", "aarch64": "aarch64", "arm64": "arm64"}[subdir.split("-", 1)[1]]
    nvml = {"available": False, "reason": "no_driver", "error": "NVML Shared Library Not Found"}
    if driver:
        nvml = {
            "available": True,
            "driver_version": driver,
            "cuda_driver_version": DRIVER_CUDA[driver],
            "gpus": [
                {"index": i, "name": name, "compute_capability": cc, "mig_mode": mig}
                for i, (name, cc) in enumerate(gpus)
            ],
        }
    return {
        "platform": {
            "system": system,
            "machine": arch,
            "subdir": subdir,
            "glibc": glibc if system == "linux" else None,
            "osx": "14.5" if system == "darwin" else None,
        },
        "nvml": nvml,
    }


def answer_for(facts, wanted=(), workspace=WORKSPACE):
    answer = diagnose_machine(facts, workspace, wanted)
    best = [
        v
        for v in answer["verdicts"]
        if v["env"] == answer["recommended"] and v["platform"] == answer["recommended_platform"]
    ]
    return answer, (best[0] if best else None)


def cuda_major(verdict):
    return int(verdict["cuda"].split(".")[0]) if verdict and verdict["cuda"] else None


def rows(answer, subdir="linux-64", major=None):
    return [
        v
        for v in answer["verdicts"]
        if v["subdir"] == subdir and (major is None or cuda_major(v) == major)
    ]


def has_subdir(subdir, cuda=False):
    return any(
        r["subdir"] == subdir and r["frameworks"] and is_cuda_row(r) == cuda
        for r in WORKSPACE["rows"]
    )


@pytest.mark.parametrize("subdir", ["linux-64", "osx-arm64", "win-64", "linux-aarch64"])
def test_no_gpu_recommends_the_cpu_builds_of_this_platform(subdir):
    answer, best = answer_for(machine(subdir))
    if not has_subdir(subdir):
        assert answer["exit_code"] == 1 and best is None
        assert all(subdir in " ".join(v["reasons"]) for v in answer["verdicts"])
        return
    assert answer["exit_code"] == 0
    assert best["subdir"] == subdir and best["cuda"] is None and "torch" in best["frameworks"]
    assert answer["commands"] == [
        f"pixi install --locked -e {best['env']}",
        f"pixi run --locked -e {best['env']} verify",
    ]
    for v in rows(answer, subdir):
        if v["cuda"]:
            assert v["status"] == "no" and "no NVIDIA GPU" in v["reasons"][0]


def test_driver_470_with_a_p100_gets_cuda11_only():
    answer, best = answer_for(machine(driver="470.256.02", gpus=[P100]))
    assert cuda_major(best) == 11 and best["status"] == "fits"
    for v in rows(answer, major=12) + rows(answer, major=13):
        assert v["status"] == "no" and "supports CUDA 11.4" in v["reasons"][0]


def test_driver_535_with_v100s_gets_cuda12_and_cuda13_names_sm70():
    answer, best = answer_for(machine(driver="535.247.01", gpus=[V100, V100]))
    assert cuda_major(best) == 12 and "torch" in best["frameworks"]
    (cuda13,) = rows(answer, major=13)
    text = " ".join(cuda13["reasons"])
    assert cuda13["status"] == "no" and "580.65.06" in text
    assert "GPU 0 Tesla V100-SXM2-32GB (sm_70) is not in the PyTorch" in text


def test_driver_550_with_an_rtx4090_gets_cuda12():
    answer, best = answer_for(machine(driver="550.163.01", gpus=[RTX4090]))
    assert cuda_major(best) == 12
    # no sm_89 in conda-forge's CUDA 12 PyTorch: the 4090 runs its sm_86 code
    torch = [d for d in best["gpu_detail"] if d["framework"] == "torch"]
    assert torch and torch[0]["runs_as"] == "sm_86 code"


def test_driver_580_with_h100s_gets_cuda13():
    _, best = answer_for(machine(driver="580.95.05", gpus=[H100] * 8))
    assert cuda_major(best) == 13 and best["status"] == "fits"


def test_framework_choice_prefers_the_env_that_has_it():
    _, best = answer_for(machine(driver="580.95.05", gpus=[H100]), wanted=("tensorflow",))
    assert "tensorflow" in best["frameworks"] and cuda_major(best) == 12


@pytest.mark.parametrize(("gpu", "sm"), [(B200, "sm_100"), (RTX5090, "sm_120")])
def test_blackwell_needs_builds_that_carry_its_arch(gpu, sm):
    answer, best = answer_for(machine(driver="580.95.05", gpus=[gpu]))
    assert cuda_major(best) == 13
    assert [d["runs_as"] for d in best["gpu_detail"]] == [f"{sm} code"]
    (cuda11,) = rows(answer, major=11)
    assert cuda11["status"] == "no" and sm in " ".join(cuda11["reasons"])


def test_rtx5090_on_a_cuda_12_9_driver_gets_cuda12():
    _, best = answer_for(machine(driver="575.64.05", gpus=[RTX5090]))
    assert cuda_major(best) == 12


def test_mixed_gpus_get_the_newest_line_every_gpu_runs():
    answer, best = answer_for(machine(driver="580.95.05", gpus=[H100, V100]))
    assert cuda_major(best) == 12
    (cuda13,) = rows(answer, major=13)
    assert "GPU 1 Tesla V100-SXM2-32GB (sm_70)" in " ".join(cuda13["reasons"])


def test_mig_partitioned_a100_fits_with_a_warning():
    _, best = answer_for(machine(driver="580.95.05", gpus=[A100], mig=True))
    assert cuda_major(best) == 13 and best["status"] == "warn"
    assert any("MIG mode" in w for w in best["warnings"])


def test_glibc_2_17_fits_nothing():
    answer, best = answer_for(machine(glibc="2.17", driver="535.247.01", gpus=[V100]))
    assert best is None and answer["exit_code"] == 1 and answer["commands"] == []
    for v in rows(answer):
        assert any("glibc 2.17 is older than the 2.28" in r for r in v["reasons"])


def test_gh200_on_linux_aarch64():
    answer, best = answer_for(machine("linux-aarch64", driver="580.95.05", gpus=[GH200]))
    if has_subdir("linux-aarch64", cuda=True):
        assert best["subdir"] == "linux-aarch64" and best["cuda"]
    elif has_subdir("linux-aarch64"):
        assert best["subdir"] == "linux-aarch64" and best["cuda"] is None
    else:
        assert answer["exit_code"] == 1


SYNTHETIC_LOCK = """version: 7
platforms:
- name: linux-aarch64
  virtual-packages:
  - __unix=0=0
  - __glibc=2.28
- name: linux-aarch64-cuda12
  subdir: linux-aarch64
  virtual-packages:
  - __cuda=12.0
  - __glibc=2.28
environments:
  cpu:
    packages:
      linux-aarch64:
      - conda: https://conda.anaconda.org/conda-forge/linux-aarch64/pytorch-2.13.0-cpu_generic_py312_h0_2.conda
  gpu:
    packages:
      linux-aarch64-cuda12:
      - conda: https://conda.anaconda.org/conda-forge/linux-aarch64/pytorch-2.10.0-cuda129_generic_py312_h1_203.conda
      - conda: https://conda.anaconda.org/conda-forge/noarch/cuda-version-12.9-h2_3.conda
packages:
- conda: https://conda.anaconda.org/conda-forge/linux-aarch64/pytorch-2.10.0-cuda129_generic_py312_h1_203.conda
  depends:
  - __cuda
  - __glibc >=2.28,<3.0.a0
"""


def test_gh200_with_a_lock_that_has_linux_aarch64_cuda(tmp_path):
    lock = tmp_path / "pixi.lock"
    lock.write_text(SYNTHETIC_LOCK, encoding="utf-8")
    workspace = read_workspace(lock)
    _, best = answer_for(
        machine("linux-aarch64", driver="580.95.05", gpus=[GH200]), workspace=workspace
    )
    assert (best["env"], best["platform"], best["cuda"]) == ("gpu", "linux-aarch64-cuda12", "12.9")
    assert best["gpu_detail"][0]["runs_as"] == "sm_90 code"
    _, best = answer_for(machine("linux-aarch64", glibc="2.27"), workspace=workspace)
    assert best is None


def test_every_cuda_pytorch_build_of_the_lock_has_a_recorded_arch_list():
    missing = []
    for row in WORKSPACE["rows"]:
        rec = row["packages"].get("pytorch")
        if rec and rec["build"].startswith("cuda"):
            entry = archlists.lookup("pytorch", rec["version"], rec["build"], row["subdir"])
            if entry is None:
                missing.append((row["env"], row["platform"], rec["version"], rec["build"]))
    assert not missing, f"add these builds' lists to envcheck/doctor/archlists.json: {missing}"


def test_arch_list_entries_name_their_recipe_commit():
    for entry in archlists._entries():
        assert re.match(
            r"https://github\.com/conda-forge/[\w-]+-feedstock/blob/[0-9a-f]{40}/recipe/\S+#L\d+",
            entry["source"],
        ), entry
        assert archlists.targets_of(entry)[-1].startswith("compute_"), entry


def test_doctor_runs_with_a_bare_python_and_nothing_installed(tmp_path):
    """The real machine, through `python -S` (no site-packages: no rich, no pyyaml)."""
    out = tmp_path / "doctor.json"
    code = (
        "import runpy, sys; sys.argv = ['envcheck', 'doctor', '--json', sys.argv[1]]\n"
        "try:\n    runpy.run_module('envcheck', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'rich', 'torch', 'tensorflow', 'numpy', 'yaml'})\n"
        "    print('IMPORTED', heavy); raise\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "IMPORTED []" in proc.stdout and "┃" not in proc.stdout
    answer = json.loads(out.read_text(encoding="utf-8"))
    assert answer["facts"]["platform"]["subdir"] == platform_facts()["subdir"]
    assert answer["exit_code"] == proc.returncode
    if not answer["facts"]["nvml"].get("available"):
        best = [v for v in answer["verdicts"] if v["env"] == answer["recommended"]]
        assert best and best[0]["cuda"] is None


def test_usage_errors_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")  # a missing folder is created; a file in the way is not
    assert main(["doctor", "--json", str(tmp_path / "file" / "x.json")]) == 2
    assert main(["doctor", "--framework", "jax"]) == 2
    assert main(["doctor", "--lock", str(tmp_path / "missing.lock")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("envcheck: error: ") for line in err)
    assert "is not a folder" in err[0] and "jax" in err[1] and "missing.lock" in err[2]


def test_bad_inputs_are_one_line_exit_1(tmp_path, capsys):
    bad = tmp_path / "facts.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["doctor", "--facts", str(bad)]) == 1
    lock = tmp_path / "pixi.lock"
    lock.write_text("version: 7\nplatforms: []\n", encoding="utf-8")
    assert main(["doctor", "--lock", str(lock)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "is not JSON" in err[0] and "not a pixi lock" in err[1]


def test_replayed_facts_give_the_recommendation_and_json(tmp_path, capsys):
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(machine(driver="580.95.05", gpus=[H100])), encoding="utf-8")
    out = tmp_path / "answer.json"
    assert main(["doctor", "--facts", str(facts), "--json", str(out)]) == 0
    answer = json.loads(out.read_text(encoding="utf-8"))
    printed = capsys.readouterr().out
    for command in answer["commands"]:
        assert command in printed
    best = [v for v in answer["verdicts"] if v["env"] == answer["recommended"]]
    assert cuda_major(best[0]) == 13
    # the --json answer replays as --facts
    assert main(["doctor", "--facts", str(out)]) == 0


def test_a_hung_nvml_is_named_as_such():
    facts = machine()
    facts["nvml"] = {"available": False, "reason": "probe_failed", "error": "timed out after 30 s"}
    answer, best = answer_for(facts)
    assert best["cuda"] is None
    for v in rows(answer):
        if v["cuda"]:
            assert v["reasons"][0].startswith("NVML did not answer (timed out after 30 s)")


def test_nvml_probe_reads_this_machine_without_nvidia_ml_py(without_nvidia_ml_py):
    """Real NVML through doctor's probe with nvidia-ml-py hidden (as in conda-forge envs): the
    ctypes binding reads the driver, or says there is none."""
    from envcheck.doctor.facts import NVML_PROBE
    from envcheck.runner import run_probe

    outcome = run_probe(NVML_PROBE, {}, 60, extra_path=without_nvidia_ml_py)
    assert outcome.ok, outcome.describe_failure()
    found = outcome.data
    assert found["binding"] == "ctypes"  # nvidia-ml-py really was out of reach
    if found["available"]:
        assert found["driver_version"] and all(g["compute_capability"] for g in found["gpus"])
    else:
        assert found["reason"] == "no_driver" and found["error"]


def test_verify_cuda_fixes_point_to_doctor():
    from envcheck import diagnose

    no_driver = diagnose.no_driver({"available": False, "reason": "no_driver", "error": "x"})
    too_old = diagnose.driver_too_old(
        {"driver_version": "535.247.01", "cuda_driver_version": "12.2"}, "13.0"
    )
    for dx in (no_driver, too_old):
        assert dx and "run `envcheck doctor` to see which env fits" in dx.fix


def test_asking_for_one_framework_prefers_the_env_with_the_fewest_others():
    answer, best = answer_for(machine(driver="575.64.05", gpus=[H100]), wanted=("torch",))
    same_line = [
        v
        for v in rows(answer)
        if v["status"] != "no" and v["cuda"] == best["cuda"] and "torch" in v["frameworks"]
    ]
    assert len(best["frameworks"]) == min(len(v["frameworks"]) for v in same_line)
    _, unasked = answer_for(machine(driver="575.64.05", gpus=[H100]))
    assert len(unasked["frameworks"]) == max(len(v["frameworks"]) for v in same_line)
