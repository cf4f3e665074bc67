"""The small things that cost a newcomer minutes (issue 22): help texts, info without a framework,
and the other first-hour stumbles, each as the user meets it."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import subprocess
import sys

import pytest
from conftest import (
    NO_MNIST,
    REPO,
    closed_port_url,
    needs_cpu_torch,
    needs_gpu_less_cpu_builds,
    run_envcheck,
    this_python,
)
from facts_library import healthy_cuda12
from rich.console import Console

from envcheck.checks import REGISTRY, Context, Options
from envcheck.cli import build_parser
from envcheck.errors import EnvcheckError
from envcheck.fixes import fit
from envcheck.info import gather_info, render_info
from envcheck.mnist.data import fetch_mnist
from envcheck.profiles import PROFILES
from envcheck.runner import ProbeOutcome
from envcheck.verify import gather_recorded, verify


def help_of(command: str) -> str:
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    return " ".join(sub.choices[command].format_help().split())


def test_verify_help_says_the_profile_is_inferred():
    assert "else inferred from the installed builds" in help_of("verify")
    # info does not infer: its help must not promise it
    assert "else cpu)" in help_of("info") and "inferred" not in help_of("info")


def test_info_names_a_framework_that_is_not_installed_in_one_line():
    facts = healthy_cuda12()
    facts["tensorflow.facts"] = {
        **facts["tensorflow.facts"],
        "ok": False,
        "data": None,
        "failure": "error",
        "error": "ModuleNotFoundError: No module named 'tensorflow'",
    }
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    ctx = Context(
        PROFILES["cuda12"], ("torch", "tensorflow"), False, Options(), gather_recorded(recorded)
    )
    out = io.StringIO()
    render_info(gather_info(ctx), Console(file=out, width=100, color_system=None))
    [line] = [x for x in out.getvalue().splitlines() if x.startswith("TensorFlow")]
    assert "not installed" in line and "--framework" in line
    assert "ModuleNotFoundError" not in out.getvalue()


def test_info_keeps_only_the_last_line_of_a_probe_error():
    facts = healthy_cuda12()
    facts["torch.facts"] = {
        **facts["torch.facts"],
        "ok": False,
        "data": None,
        "failure": "error",
        "error": "Traceback (most recent call last):\n  File x\n"
        "OSError: libcudnn.so.9: cannot open",
    }
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    ctx = Context(PROFILES["cuda12"], ("torch",), False, Options(), gather_recorded(recorded))
    out = io.StringIO()
    render_info(gather_info(ctx), Console(file=out, width=120, color_system=None))
    assert "Traceback" not in out.getvalue()
    assert "PyTorch could not be read: OSError: libcudnn.so.9: cannot open" in out.getvalue()


def test_lock_on_python_39_names_a_way_that_works():
    from envcheck.lockaudit.lockfile import rattler_missing

    old = rattler_missing((3, 9, 18))
    assert "Python 3.9" in old and "requirements/lockcheck.txt" in old
    assert "pip install py-rattler" not in old  # no wheel there: pip would fail
    assert (REPO / "requirements" / "lockcheck.txt").is_file()
    assert "pip install 'py-rattler" in rattler_missing((3, 12, 0))


def test_the_mnist_skip_hint_names_the_python_that_runs_the_tests():
    assert f"run `{this_python()} -m envcheck fetch-mnist` once" in NO_MNIST
    # the hint works as written, from where the tests run
    proc = subprocess.run(
        [this_python(), "-m", "envcheck", "fetch-mnist", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_failed_fetch_names_mirror_and_leaves_no_empty_dest(tmp_path):
    dest = tmp_path / "new" / "mnist"
    with pytest.raises(EnvcheckError) as err:
        fetch_mnist(dest, mirrors=[closed_port_url()], progress=False)
    assert "--mirror URL" in err.value.message and "ENVCHECK_MNIST_MIRRORS" in err.value.message
    assert not dest.exists()  # a retry with --dest must not find a misleading empty folder
    kept = tmp_path / "kept"
    kept.mkdir()  # a folder the user made is never removed
    with pytest.raises(EnvcheckError):
        fetch_mnist(kept, mirrors=[closed_port_url()], progress=False)
    assert kept.is_dir()


def bench_main():
    spec = importlib.util.spec_from_file_location("bench_mnist", REPO / "bench" / "mnist.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.main


@needs_gpu_less_cpu_builds
def test_bench_says_a_failure_once_not_once_per_seed(capsys, mnist_dir):
    # CPU torch asked to train on cuda: fails before training, the same for every seed
    argv = ["--framework", "torch", "--device", "cuda", "--quick", "--seeds", "0-3"]
    assert bench_main()(argv + ["--offline", "--data-dir", str(mnist_dir)]) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED after") == 1, out
    assert "seeds 1, 2, 3: torch: not run: seed 0 failed" in out


@needs_cpu_torch
def test_replay_of_facts_saved_without_training(tmp_path):
    facts = tmp_path / "facts.json"
    live = run_envcheck(
        "verify", "--expect", "cpu", "--framework", "torch", "--no-training",
        "--save-facts", str(facts),
    )  # fmt: skip
    assert live.returncode == 0, live.stdout + live.stderr
    replay = run_envcheck("verify", "--replay", str(facts), "--json", str(tmp_path / "r.json"))
    assert replay.returncode == 0, replay.stdout
    assert "training not replayed" in replay.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert "training" not in [c["name"] for c in report["categories"]]


def test_the_first_run_of_run_tests_shows_what_it_downloads():
    """The big installs show pip's own progress (no --quiet) and say which step is running."""
    script = (REPO / "tools" / "run-tests.sh").read_text(encoding="utf-8")
    installs = [x for x in script.splitlines() if "pip_install " in x or "pip install" in x]
    big = [x for x in installs if "torch_pin" in x or "requirements/test.txt" in x]
    assert big and not any("--quiet" in x for x in big), big
    for step in ("[1/3]", "[2/3]", "[3/3]"):
        assert f"run-tests: {step}" in script


def replay_checks(facts, frameworks=("torch",)):
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    checks = [c for c in REGISTRY if not c.heavy and c.check_id != "environment.lock_drift"]
    report, _ = verify(
        PROFILES["cuda12"], frameworks, False, Options(), recorded=recorded, checks=checks
    )
    return {c.check_id: c for c in report.checks}


def cpu_torch_in(install: str):
    """A CPU PyTorch under the cuda12 profile, installed with pixi, conda or pip."""
    facts = healthy_cuda12()
    facts["torch.facts"]["data"].update(
        version="2.9.1+cpu", cuda_build=None, cuda_available=False, devices=[], device_count=0
    )
    env = facts["environment"]["data"]
    if install != "pixi":
        env.update(pixi_environment=None, variables={})
    if install == "pip":
        env.update(conda_prefix=None, python_in_prefix=False, conda_packages={})
    return facts


@pytest.mark.parametrize(
    "install, wanted",
    [
        ("pixi", "`pixi install --locked -e cuda12`"),
        ("conda", "`conda create -n cuda12 --file locks/explicit/cuda12-linux-64.txt`"),
        ("pip", "`pip install --force-reinstall torch --index-url "
         "https://download.pytorch.org/whl/cu128`"),
    ],
)  # fmt: skip
def test_fixes_fit_the_install_the_user_has(install, wanted):
    fix = replay_checks(cpu_torch_in(install))["build.torch"].fix
    assert wanted in fix, fix
    if install != "pixi":
        assert "pixi" not in fix
    if install == "pip":
        assert "conda-forge" not in fix


def test_the_locks_a_conda_fix_names_exist():
    fix = fit("reinstall (`pixi install -e cuda12`)", "conda", {"platform": {
        "system": "Linux", "machine": "x86_64"}})  # fmt: skip
    path = re.search(r"--file (\S+)`", fix).group(1)
    assert (REPO / path).is_file(), path


def test_no_driver_fix_for_a_pip_user_names_the_cpu_wheel():
    facts = cpu_torch_in("pip")
    facts["torch.facts"]["data"].update(version="2.9.1+cu128", cuda_build="12.8")
    facts["nvml"]["data"] = {"available": False, "reason": "no_driver", "error": "NVML gone"}
    fix = replay_checks(facts)["devices.gpus"].fix
    assert "`envcheck verify --expect cpu`" in fix
    assert "https://download.pytorch.org/whl/cpu" in fix and "pixi" not in fix


def test_a_gap_in_recorded_facts_is_not_called_a_broken_env():
    facts = healthy_cuda12()  # no training run recorded
    recorded = {k: ProbeOutcome.from_dict(v) for k, v in facts.items()}
    checks = [c for c in REGISTRY if c.check_id == "training.torch"]
    report, _ = verify(
        PROFILES["cpu"], ("torch",), False, Options(), recorded=recorded, checks=checks
    )
    [c] = report.checks
    assert "hold no torch.train run" in c.message and "--no-training" in c.fix
    assert "reinstall" not in c.fix


@pytest.mark.parametrize(
    "fix",
    ["reinstall (`pixi install --locked -e cuda12`)", "reinstall (`pixi install -e cuda12`)"],
)
def test_pixi_install_with_options_is_fitted_too(fix):
    env = {"platform": {"system": "Linux", "machine": "x86_64"}}
    assert fit(fix, "conda", env) == (
        "reinstall (`conda create -n cuda12 --file locks/explicit/cuda12-linux-64.txt`)"
    )
    assert "pixi" not in fit(fix, "pip", env)
    assert fit("from the lock (pixi install --locked); rerun", "pip", env) == (
        "from the lock (`pip install --force-reinstall` of the package); rerun"
    )


def test_a_python_without_envcheck_s_requirements_gets_one_line(tmp_path):
    """`python3 -m envcheck info` from a checkout with a bare system Python (no rich)."""
    code = (
        "import sys; sys.modules['rich'] = None\n"  # what a Python without rich gives
        "from envcheck.cli import main; sys.exit(main(['info']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("envcheck: error: rich is not installed in this Python")
    assert "pip install rich" in line


def test_a_general_env_pointer_is_not_turned_into_a_torch_install():
    """`pixi install --locked -e <env>` for its compilers: pip has no equivalent, keep it."""
    fix = "install the env from the lock (`pixi install --locked -e <env>`: it has gcc)"
    assert fit(fix, "pip", {}) == fix
    assert "locks/explicit/" in fit(fix, "conda", {})
