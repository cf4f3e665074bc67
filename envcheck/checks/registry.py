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


@dataclass(frozen=True)
class ProbeSpec:
    target: str  # module:function run by envcheck.worker
    timeout: float
    framework: str | None = None


PROBES: dict[str, ProbeSpec] = {
    "nvml": ProbeSpec("envcheck.probes.nvml:gather", 30),
    "science": ProbeSpec("envcheck.probes.science:gather", 120),
    "torch.facts": ProbeSpec("envcheck.probes.torch_probe:facts", 120, "torch"),
    "torch.kernels": ProbeSpec("envcheck.probes.torch_probe:kernels", 180, "torch"),
    "torch.assert": ProbeSpec("envcheck.probes.torch_probe:device_assert", 120, "torch"),
    "torch.distributed": ProbeSpec("envcheck.distributed.launch:probe", 300, "torch"),
    # every GPU pair; a hung copy is named after its own 20 s deadline, well within this. Its
    # own process, never a shared worker: a hung copy leaves the CUDA context wedged
    "torch.p2p": ProbeSpec("envcheck.probes.p2p:probe", 240, "torch"),
    "torch.train": ProbeSpec("envcheck.training.torch_mnist:train", 600, "torch"),
    "tensorflow.facts": ProbeSpec("envcheck.probes.tf_probe:facts", 180, "tensorflow"),
    "tensorflow.kernels": ProbeSpec("envcheck.probes.tf_probe:kernels", 180, "tensorflow"),
    "tensorflow.train": ProbeSpec("envcheck.training.tf_mnist:train", 600, "tensorflow"),
    # the compile stack: compilers/Triton/ptxas (no framework), torch.compile, XLA
    "compile.toolchain": ProbeSpec("envcheck.probes.compile_probe:toolchain", 90),
    "torch.compile": ProbeSpec("envcheck.probes.compile_probe:torch_compile", 300, "torch"),
    "tensorflow.compile": ProbeSpec("envcheck.probes.compile_probe:tf_compile", 180, "tensorflow"),
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
    # where the profile came from, for the report: --expect, $ENVCHECK_PROFILE or inferred
    profile_source: str = ""

    @property
    def gpu_expected(self) -> bool:
        return self.require_gpu or self.profile.wants_gpu

    def outcome(self, probe: str) -> ProbeOutcome:
        if probe not in self.facts:
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
