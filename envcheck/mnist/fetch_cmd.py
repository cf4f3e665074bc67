"""`envcheck fetch-mnist`: download the four MNIST files (checked) for later offline use."""

from __future__ import annotations

import argparse

from envcheck.guard import plain
from envcheck.mnist.data import DEFAULT_MIRRORS, ENV_MIRRORS, cache_dir, fetch_mnist


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dest",
        metavar="DIR",
        default=None,
        help="where to put the files (default: the user cache dir, where verify looks)",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        action="append",
        default=None,
        help=(
            "base URL serving the original .gz files; repeat to try several in turn "
            f"(default: ${ENV_MIRRORS} or {', '.join(DEFAULT_MIRRORS)})"
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Fetch into --dest; EnvcheckError (one line: cause and fix) propagates to the CLI."""
    dest = fetch_mnist(dest=args.dest, mirrors=args.mirror)
    print(plain(f"MNIST ready in {dest} (4 files, SHA-256 checked)"))
    if args.dest and dest != cache_dir():
        # verify only searches the cache by itself; say how to point it at this copy.
        print(
            plain(f"use it with: envcheck verify --data-dir {dest}  (or ENVCHECK_DATA_DIR={dest})")
        )
    return 0
