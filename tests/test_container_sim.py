"""envcheck inside containers, simulated: marker files and variables of the runtimes, the
folders they inject the driver into (with a stand-in NVML library), a container started
without GPU access, and a read-only home (Apptainer's default, `docker run --read-only`).
Podman and Apptainer cannot start containers on these machines; the image-level checks run
in .github/workflows/containers.yml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from facts_library import healthy_cuda12
from test_diagnose import replay

from envcheck import container, diagnose
from envcheck.model import Status

REPO = Path(__file__).resolve().parent.parent
READ_ONLY = Path("/sys/kernel")  # sysfs: no one, root included, can create files there


@pytest.mark.parametrize(
    ("marker", "runtime"),
    [(".dockerenv", "docker"), ("run/.containerenv", "podman"), (".singularity.d", "apptainer")],
)
def test_runtime_is_told_by_its_marker(tmp_path, marker, runtime):
    assert container.runtime({}, str(tmp_path)) is None
    path = tmp_path / marker
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if marker == ".singularity.d" else path.touch()
    assert container.runtime({}, str(tmp_path)) == runtime
    assert container.facts({}, str(tmp_path))["gpu_flag"].split()[0] == runtime


def test_apptainer_is_told_by_its_variables(tmp_path):
    for name in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER"):
        assert container.runtime({name: "/scratch/img.sif"}, str(tmp_path)) == "apptainer"
    assert container.runtime({"APPTAINER_CACHEDIR": "/x"}, str(tmp_path)) is None
    assert container.facts({}, str(tmp_path)) == {}


def test_facts_list_the_devices_and_the_injected_driver_library(tmp_path):
    (tmp_path / ".dockerenv").touch()
    (tmp_path / "dev").mkdir()
    for dev in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        (tmp_path / "dev" / dev).touch()
    libs = tmp_path / "usr/local/nvidia/lib64"
    libs.mkdir(parents=True)
    (libs / "libnvidia-ml.so.1").touch()
    got = container.facts({}, str(tmp_path))
    assert got["runtime"] == "docker"
    assert got["nvidia_devices"] == ["nvidia-uvm", "nvidia0", "nvidiactl"]
    assert got["driver_library"] == str(libs / "libnvidia-ml.so.1")


# -- NVML in the folders container runtimes inject the driver into ----------------------------
@pytest.mark.parametrize("folder", [".singularity.d/libs", "usr/local/nvidia/lib64"])
def test_ctypes_nvml_finds_the_driver_where_the_runtime_put_it(tmp_path, fake_nvml_dir, folder):
    libs = tmp_path / folder
    libs.mkdir(parents=True)
    shutil.copy(fake_nvml_dir / "libnvidia-ml.so.1", libs / "libnvidia-ml.so.1")
    code = (
        "import sys\n"
        "from envcheck.probes.nvml_ctypes import CtypesNvml\n"
        "nv = CtypesNvml(root=sys.argv[1])\n"
        "nv.nvmlInit()\n"
        "print(nv.nvmlSystemGetDriverVersion())\n"
    )
    # A fresh interpreter with LD_LIBRARY_PATH unset: only the folder search can find it.
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "580.159.04"


# -- a container started without --gpus all / --nv --------------------------------------------
def _no_gpu_container(runtime: str, devices: list[str]):
    facts = healthy_cuda12()
    facts["nvml"]["data"] = {
        "available": False,
        "reason": "no_driver",
        "error": "NVML Shared Library Not Found",
    }
    facts["torch.facts"]["data"].update(
        cuda_available=False, device_count=0, devices=[], init_error="RuntimeError: no driver"
    )
    facts["environment"]["data"]["container"] = {
        "runtime": runtime,
        "nvidia_devices": devices,
        "driver_library": None,
        "gpu_flag": container.GPU_FLAGS[runtime],
    }
    return facts


@pytest.mark.parametrize(
    ("runtime", "flag"), [("docker", "--gpus all"), ("apptainer", "--nv"), ("podman", "nvidia")]
)
def test_container_without_gpu_access_is_named_with_the_flag(runtime, flag):
    checks, report = replay(_no_gpu_container(runtime, []), frameworks=("torch",))
    gpus = checks["devices.gpus"]
    assert gpus.status is Status.FAIL and report.exit_code == 1
    assert gpus.cause.startswith(f"this {runtime} container was started without GPU access")
    assert flag in gpus.fix
    torch = checks["devices.torch"]
    assert torch.cause == gpus.cause and flag in torch.fix


def test_container_with_devices_but_no_driver_library_is_not_called_gpu_less():
    # The devices are there (--device /dev/nvidia0 without the toolkit): another problem.
    facts = _no_gpu_container("docker", ["nvidia0", "nvidiactl"])
    env, nvml = facts["environment"]["data"], facts["nvml"]["data"]
    assert diagnose.container_without_gpu(env, nvml) is None
    checks, _ = replay(facts, frameworks=("torch",))
    assert "no NVIDIA driver answers" in checks["devices.gpus"].cause


def test_outside_a_container_no_driver_reads_as_before():
    facts = _no_gpu_container("docker", [])
    del facts["environment"]["data"]["container"]
    checks, _ = replay(facts, frameworks=("torch",))
    assert "no NVIDIA driver answers" in checks["devices.gpus"].cause


def test_cpu_profile_in_a_gpu_less_container_passes():
    facts = _no_gpu_container("apptainer", [])
    checks, _ = replay(facts, profile="cpu", frameworks=("torch",))
    assert checks["devices.gpus"].status is Status.SKIP


def test_info_names_the_container_and_the_flag():
    from envcheck.info import _rows

    facts = _no_gpu_container("docker", [])
    rows = dict(_rows({"environment": facts["environment"]["data"], "nvml": facts["nvml"]["data"]}))
    assert rows["Container"] == (
        "docker, no GPU access (for GPUs start it with docker run --gpus all "
        "(NVIDIA Container Toolkit))"
    )
    facts["environment"]["data"]["container"]["nvidia_devices"] = ["nvidia0", "nvidiactl"]
    rows = dict(_rows({"environment": facts["environment"]["data"], "nvml": facts["nvml"]["data"]}))
    assert rows["Container"] == "docker, GPU devices: nvidia0, nvidiactl"


# -- read-only home: the MNIST cache is named in one line -----------------------------------
@pytest.mark.skipif(
    sys.platform != "linux" or not READ_ONLY.is_dir(), reason="needs Linux sysfs (read-only)"
)
def test_mnist_cache_in_a_read_only_home_is_named_in_one_line(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("XDG_CACHE_HOME", "ENVCHECK_DATA_DIR", "PYTHONPATH")
    }
    env.update(
        HOME=str(READ_ONLY), PYTHONPATH=str(REPO), ENVCHECK_MNIST_MIRRORS="http://127.0.0.1:9/"
    )
    done = subprocess.run(
        [sys.executable, "-m", "envcheck", "fetch-mnist"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert f"cannot create {READ_ONLY}/.cache/envcheck/mnist" in lines[0]
    assert "--dest" in lines[0] or "ENVCHECK_DATA_DIR" in lines[0]


# -- a read-only container, for real: a private mount namespace whose temp folders are
# read-only tmpfs mounts (needs root with CAP_SYS_ADMIN; skipped elsewhere) ---------------
RO_MOUNTS = "for d in /tmp /var/tmp /dev/shm; do mount -t tmpfs -o ro none $d || exit 97; done"


def _can_unshare() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro none /tmp"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _can_unshare() or not Path("/mnt").is_dir(),
    reason="needs `unshare -m` and mount rights (root, CAP_SYS_ADMIN)",
)


def _in_read_only_box(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{RO_MOUNTS}; cd {READ_ONLY} && {command}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_unshare
def test_no_writable_temp_folder_is_named_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("TMPDIR", "TEMP", "TMP")}
    env.update(HOME=str(READ_ONLY), PYTHONPATH=str(REPO))
    done = _in_read_only_box(f"{sys.executable} -m envcheck info", env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("envcheck: error: no writable folder for temporary files")
    assert "TMPDIR" in lines[0] and "--tmpfs /tmp" in lines[0]


@needs_unshare
def test_entrypoint_in_a_read_only_box_names_the_fix_and_still_runs(tmp_path):
    image = tmp_path / "opt"
    image.mkdir()
    shutil.copy(REPO / "containers" / "entrypoint.sh", image / "entrypoint.sh")
    (image / "activate.sh").write_text("export ENVCHECK_ACTIVATED=yes\n", encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(READ_ONLY)}
    # The image folder sits under /tmp, which the box hides: copy it to a private mount.
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            "mount -t tmpfs none /mnt "
            f"&& cp -r {image} /mnt/opt && mount -o remount,ro /mnt "
            f"&& {RO_MOUNTS} && bash /mnt/opt/entrypoint.sh "
            "sh -c 'echo \"$ENVCHECK_ACTIVATED|$XDG_CACHE_HOME\"'",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "yes|"
    assert done.stderr.strip().splitlines() == [
        "entrypoint: home and temp folders are read-only; caches cannot be written: bind a "
        "writable folder (docker run --tmpfs /tmp, apptainer --writable-tmpfs)"
    ]
