"""Command line: envcheck verify | info | fetch-mnist | lock.

Exit codes: 0 passed (warnings allowed), 1 a check failed or input is bad, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import EnvcheckError

# Subcommands owned by other modules: each has add_arguments(parser) and run(args) -> int.
PLUGGED = {
    "fetch-mnist": (
        "envcheck.mnist.fetch_cmd",
        "download MNIST into the cache or --dest (pre-seed air-gapped machines)",
    ),
    "lock": (
        "envcheck.lockaudit.cmd",
        "audit pixi.lock against pixi.toml offline (satisfiability, policy, sizes, drift)",
    ),
}


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect",
        metavar="PROFILE",
        help="cpu, cuda11, cuda12 or cuda13 "
        "(default: $ENVCHECK_PROFILE, set by the pixi env, else cpu)",
    )
    p.add_argument(
        "--framework",
        metavar="LIST",
        help="comma list: torch,tensorflow (default: $ENVCHECK_FRAMEWORKS, else the profile's)",
    )
    p.add_argument(
        "--require-gpu",
        action="store_true",
        help="fail unless the frameworks compute on a GPU (implied by cuda profiles)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"envcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("verify", help="check imports, builds, GPUs, kernels and MNIST training")
    _add_selection(v)
    v.add_argument("--quick", action="store_true", help="short training run (bar 97%%)")
    v.add_argument("--json", metavar="FILE", type=Path, help="write the JSON report")
    v.add_argument("--junit", metavar="FILE", type=Path, help="write a JUnit XML report")
    v.add_argument(
        "--data-dir",
        metavar="DIR",
        help="MNIST directory (default: $ENVCHECK_DATA_DIR, the user cache, then download)",
    )
    v.add_argument("--no-download", action="store_true", help="never download MNIST")
    v.add_argument(
        "--min-accuracy",
        type=float,
        metavar="FRACTION",
        help="override the training bars (e.g. 0.99)",
    )
    v.add_argument("--no-training", action="store_true", help="skip the training category")
    v.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="multiply every probe timeout (slow machines)",
    )
    v.add_argument(
        "--save-facts",
        metavar="FILE",
        type=Path,
        help="also write the gathered raw facts (replayable with --replay)",
    )
    v.add_argument(
        "--replay",
        metavar="FILE",
        type=Path,
        help="diagnose facts recorded with --save-facts instead of gathering",
    )

    i = sub.add_parser("info", help="the environment report alone (frameworks, CUDA, NVML)")
    _add_selection(i)
    i.add_argument("--json", metavar="FILE", type=Path, help="write the facts as JSON")

    for name, (module, help_text) in PLUGGED.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(plugged=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ImportError:
            p.set_defaults(unavailable=True)
    return parser


def _context_inputs(args: argparse.Namespace):
    from .profiles import resolve_frameworks, resolve_profile

    profile = resolve_profile(args.expect)
    return profile, resolve_frameworks(args.framework, profile)


def _profile_source(args: argparse.Namespace) -> str:
    """Where the profile comes from; "infer": from the installed builds (none was named)."""
    from .profiles import PROFILE_ENV

    if args.expect:
        return "--expect"
    return f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "infer"


def _check_named_data_dir(data_dir: str | None) -> None:
    """A wrong --data-dir / ENVCHECK_DATA_DIR is an input error: say so before any check runs."""
    from .mnist.data import ENV_DATA_DIR, locate_mnist

    if data_dir or os.environ.get(ENV_DATA_DIR):
        try:
            locate_mnist(data_dir, download=False)  # a named folder: presence only, no download
        except EnvcheckError as exc:
            raise EnvcheckError(exc.message, exit_code=2) from None


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .checks import REGISTRY, Options
    from .fileio import write_atomic
    from .report import json_report, junit, summary, terminal
    from .verify import load_facts, save_facts, verify

    profile, frameworks = _context_inputs(args)
    if args.min_accuracy is not None and not 0 < args.min_accuracy <= 1:
        raise EnvcheckError("--min-accuracy takes a fraction in (0, 1], e.g. 0.99", exit_code=2)
    if args.timeout_scale <= 0:
        raise EnvcheckError("--timeout-scale must be positive", exit_code=2)
    options = Options(
        quick=args.quick,
        data_dir=args.data_dir,
        download=not args.no_download,
        min_accuracy=args.min_accuracy,
        timeout_scale=args.timeout_scale,
    )
    recorded = load_facts(args.replay) if args.replay else None
    if recorded is None and not args.no_training:
        _check_named_data_dir(args.data_dir)
    checks = [c for c in REGISTRY if not (args.no_training and c.category == "training")]
    console = Console(stderr=False)
    err = Console(stderr=True)
    with err.status("envcheck: starting") as status:
        report, ctx = verify(
            profile,
            frameworks,
            args.require_gpu,
            options,
            recorded=recorded,
            checks=checks,
            profile_source=_profile_source(args),
            framework_option=args.framework,
            on_start=lambda c: status.update(f"envcheck: {c.category}.{c.name}"),
        )
    terminal.render(report, console)
    if args.json:
        write_atomic(args.json, json_report.to_json(report))
    if args.junit:
        write_atomic(args.junit, junit.to_junit(report))
    if args.save_facts:
        save_facts(args.save_facts, ctx)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(summary.to_markdown(report))
    return report.exit_code


def cmd_info(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .checks import Context, Options
    from .fileio import write_atomic
    from .info import gather_info, render_info
    from .verify import gather_live

    profile, frameworks = _context_inputs(args)
    ctx = Context(profile, frameworks, args.require_gpu, Options(), gather_live)
    info = gather_info(ctx)
    render_info(info, Console())
    if args.json:
        write_atomic(args.json, json.dumps(info, indent=2, default=str) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "info":
            return cmd_info(args)
        if getattr(args, "unavailable", False):
            raise EnvcheckError(
                f"`envcheck {args.command}` is not available in this install", exit_code=2
            )
        return int(importlib.import_module(args.plugged).run(args))
    except EnvcheckError as exc:
        print(f"envcheck: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("envcheck: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
