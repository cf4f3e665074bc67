"""One registry of checks and of the probes (subprocess fact gatherers) they read.

A check is a plain function ``fn(ctx) -> CheckResult`` over gathered facts (``ctx.data``);
it never imports a framework itself, so a recorded set of facts can be replayed through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..model import CheckResult
from ..profiles import Profile
from ..runner import ProbeOutcome

ISOLATIONS = ("shared", "fresh", "launcher", "inprocess")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe: ``target`` is ``module:function(args) -> dict``.

    ``isolation`` (see probehost.py): "shared" runs in the framework's warm worker (the
    default for a probe with a framework), "fresh" in a process of its own (the default
    without one), "launcher" starts torchrun, "inprocess" is called directly. ``args`` builds
    the probe's arguments from the context (default: none).
    """

    target: str
    timeout: float
    framework: str | None = None
    isolation: str | None = None
    args: Callable[[Context], dict[str, Any]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.isolation is None:
            object.__setattr__(self, "isolation", "shared" if self.framework else "fresh")
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation {self.isolation!r} is not one of {ISOLATIONS}")

    def build_args(self, ctx: Context) -> dict[str, Any]:
        return self.args(ctx) if self.args else {}


def _device(ctx: Context, framework: str) -> str:
    if not ctx.gpu_expected:
        return "cpu"
    return "cuda" if framework == "torch" else "gpu"


def environment_args(ctx: Context) -> dict[str, Any]:
    return {"lock_env": ctx.profile.name if ctx.profile.named else None}


def kernel_args(framework: str) -> Callable[[Context], dict[str, Any]]:
    return lambda ctx: {"device": _device(ctx, framework)}


def train_args(framework: str) -> Callable[[Context], dict[str, Any]]:
    def build(ctx: Context) -> dict[str, Any]:
        gpu = ctx.gpu_expected
        quick = ctx.options.quick or not gpu
        return {
            "device": _device(ctx, framework),
            "quick": quick,
            "mixed_precision": gpu,
            "data_dir": ctx.options.data_dir,
            "download": ctx.options.download,
            # the accuracy curve feeds time-to-99% on a GPU run; the quick run needs only
            # its final accuracy, so it evaluates once
            "curve": not quick,
        }

    return build


def distributed_args(ctx: Context) -> dict[str, Any]:
    # one rank per GPU (NCCL), else gloo on the CPU
    gpus = ctx.data("torch.facts").get("device_count", 0) if ctx.gpu_expected else 0
    return {"gpus": gpus, "timeout": PROBES["torch.distributed"].timeout
            * ctx.options.timeout_scale * 0.8}  # fmt: skip


PROBES: dict[str, ProbeSpec] = {
    "environment": ProbeSpec(
        "envcheck.probes.environment:probe", 60, isolation="inprocess", args=environment_args
    ),
    "nvml": ProbeSpec("envcheck.probes.nvml:gather", 30),
    "science": ProbeSpec("envcheck.probes.science:gather", 120),
    "torch.facts": ProbeSpec("envcheck.probes.torch_probe:facts", 120, "torch"),
    "torch.kernels": ProbeSpec(
        "envcheck.probes.torch_probe:kernels", 180, "torch", args=kernel_args("torch")
    ),
    # its own process: after a device-side assert the CUDA context is unusable
    "torch.assert": ProbeSpec(
        "envcheck.probes.torch_probe:device_assert", 120, "torch", isolation="fresh"
    ),
    "torch.distributed": ProbeSpec(
        "envcheck.distributed.launch:probe", 300, "torch", "launcher", distributed_args
    ),
    # every GPU pair; a hung copy is named after its own 20 s deadline, well within this. Its
    # own process, never a shared worker: a hung copy leaves the CUDA context wedged
    "torch.p2p": ProbeSpec("envcheck.probes.p2p:probe", 240, "torch", isolation="fresh"),
    "torch.train": ProbeSpec(
        "envcheck.training.torch_mnist:train", 600, "torch", args=train_args("torch")
    ),
    "tensorflow.facts": ProbeSpec("envcheck.probes.tf_probe:facts", 180, "tensorflow"),
    "tensorflow.kernels": ProbeSpec(
        "envcheck.probes.tf_probe:kernels", 180, "tensorflow", args=kernel_args("tensorflow")
    ),
    "tensorflow.train": ProbeSpec(
        "envcheck.training.tf_mnist:train", 600, "tensorflow", args=train_args("tensorflow")
    ),
    # the compile stack: compilers/Triton/ptxas (no framework), torch.compile, XLA
    "compile.toolchain": ProbeSpec("envcheck.probes.compile_probe:toolchain", 90),
    "torch.compile": ProbeSpec(
        "envcheck.probes.compile_probe:torch_compile", 300, "torch", args=kernel_args("torch")
    ),
    "tensorflow.compile": ProbeSpec(
        "envcheck.probes.compile_probe:tf_compile",
        180,
        "tensorflow",
        args=kernel_args("tensorflow"),
    ),
}


@dataclass
class Options:
    quick: bool = False
    data_dir: str | None = None
    download: bool = True
    min_accuracy: float | None = None  # overrides the per-framework bars
    timeout_scale: float = 1.0


class ProbeFailed(Exception):
    """A probe a check needs hung, crashed or raised: the check fails with that reason."""

    def __init__(self, name: str, outcome: ProbeOutcome) -> None:
        super().__init__(name)
        self.name = name
        self.outcome = outcome


@dataclass
class Context:
    profile: Profile
    frameworks: tuple[str, ...]
    require_gpu: bool
    options: Options
    # Gathers one probe's facts on first use (a subprocess), or looks them up when replaying.
    gather: Callable[[Context, str], ProbeOutcome]
    facts: dict[str, ProbeOutcome] = field(default_factory=dict)
    # probes started ahead (overlapped): name -> Future of its ProbeOutcome
    pending: dict[str, Any] = field(default_factory=dict)
    # where the profile came from, for the report: --expect, $ENVCHECK_PROFILE or inferred
    profile_source: str = ""

    @property
    def gpu_expected(self) -> bool:
        return self.require_gpu or self.profile.wants_gpu

    def outcome(self, probe: str) -> ProbeOutcome:
        if probe not in self.facts:
            if probe in self.pending:
                self.facts[probe] = self.pending.pop(probe).result()
            else:
                self.facts[probe] = self.gather(self, probe)
        return self.facts[probe]

    def data(self, probe: str) -> dict[str, Any]:
        """The probe's facts; raises ProbeFailed when the probe did not finish cleanly.

        A framework's heavier probes (kernels, training) need its facts probe first: where the
        framework does not even import, they fail as that probe, which is reported once.
        """
        framework = PROBES[probe].framework if probe in PROBES else None
        if framework and probe != f"{framework}.facts":
            self.data(f"{framework}.facts")
        outcome = self.outcome(probe)
        if not outcome.ok:
            raise ProbeFailed(probe, outcome)
        return outcome.data


@dataclass(frozen=True)
class Check:
    category: str
    name: str
    fn: Callable[[Context], CheckResult]
    framework: str | None = None
    # heavy checks are left out of `envcheck info`
    heavy: bool = False
    # where False, the check has nothing to look at on this machine (GPU health without a
    # GPU) and is left out of the report instead of adding a skip
    when: Callable[[Context], bool] | None = None

    @property
    def check_id(self) -> str:
        return f"{self.category}.{self.name}"

    def applies(self, ctx: Context) -> bool:
        if self.framework is not None and self.framework not in ctx.frameworks:
            return False
        return self.when is None or self.when(ctx)


REGISTRY: list[Check] = []


def register(
    category: str,
    name: str,
    framework: str | None = None,
    heavy: bool = False,
    when: Callable[[Context], bool] | None = None,
) -> Callable:
    def wrap(fn: Callable[[Context], CheckResult]) -> Callable[[Context], CheckResult]:
        REGISTRY.append(Check(category, name, fn, framework, heavy, when))
        return fn

    return wrap
