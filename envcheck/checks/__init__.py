"""The checks, in report order. Importing this package fills the registry."""

from . import (  # noqa: F401
    build,
    compile,
    devices,
    distributed,
    environment,
    health,
    imports,
    kernels,
    p2p,
    training,
)
from .registry import PROBES, REGISTRY, Check, Context, Options, ProbeFailed, register

__all__ = ["PROBES", "REGISTRY", "Check", "Context", "Options", "ProbeFailed", "register"]
