"""MNIST for the verify training run: find it, download it with checksum checks, parse it.

Only numpy, platformdirs and rich are needed here; torch and tensorflow are never imported.
"""

from __future__ import annotations

from envcheck.mnist.data import (
    DEFAULT_MIRRORS,
    ENV_DATA_DIR,
    ENV_MIRRORS,
    FILES,
    cache_dir,
    fetch_mnist,
    load_mnist,
    locate_mnist,
)
from envcheck.mnist.idx import parse_idx, read_idx

__all__ = [
    "DEFAULT_MIRRORS",
    "ENV_DATA_DIR",
    "ENV_MIRRORS",
    "FILES",
    "cache_dir",
    "fetch_mnist",
    "load_mnist",
    "locate_mnist",
    "parse_idx",
    "read_idx",
]
