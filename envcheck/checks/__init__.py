"""The checks, in report order. Importing this package fills the registry."""

from . import build, devices, distributed, environment, imports, kernels, training  # noqa: F401
from .registry import PROBES, REGISTRY, Check, Context, Options, ProbeFailed, register

__all__ = ["PROBES", "REGISTRY", "Check", "Context", "Options", "ProbeFailed", "register"]
