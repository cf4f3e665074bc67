"""Command line: envcheck verify | info | fetch-mnist | lock | doctor | report.

Exit codes: 0 passed (warnings allowed), 1 a check failed or input is bad, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from pathlib import Path

from . import __version__, container, interrupts
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
    "doctor": (
        "envcheck.doctor.cmd",
        "which environment of the lock fits this machine (run before installing one)",
    ),
    "report": (
        "envcheck.report.fleet",
        "merge many machines' verify --json reports into one table (+ JUnit, step summary)",
    ),
}


def _add_selection(p: argparse.ArgumentParser, infer: bool = False) -> None:
    """--expect, --framework, --require-gpu; ``infer``: without a profile named, verify takes it
    from the installed builds (info does not)."""
    fallback = (
        "else inferred from the installed builds: the CUDA line of a CUDA build, or cpu"
        if infer
        else "else cpu"
    )
    p.add_argument(
        "--expect",
        metavar="PROFILE",
        help=f"cpu, cuda11, cuda12 or cuda13 (default: $ENVCHECK_PROFILE, set by the pixi env, "
        f"{fallback})",
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

    v = sub.add_parser(
        "verify", help="check imports, builds, GPUs, kernels, compile and MNIST training"
    )
    _add_selection(v, infer=True)
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
        "--no-compile",
        action="store_true",
        help="skip the compile category (torch.compile, XLA: ~15-30 s cold on a small CPU)",
    )
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


def _context_inputs(args: argparse.Namespace, recording=None):
    """Profile and frameworks: the options, else a replayed recording's, else the defaults."""
    from .profiles import PROFILES, resolve_frameworks, resolve_profile

    if args.framework is not None and not args.framework.strip(" ,"):
        raise EnvcheckError(
            "--framework is empty; name one or more of torch, tensorflow (comma list), "
            "or leave the option out for the profile's",
            exit_code=2,
        )
    if recording is not None and not args.expect and recording.profile in PROFILES:
        profile = PROFILES[recording.profile]
    else:
        profile = resolve_profile(args.expect)
    if recording is not None and not args.framework and recording.frameworks:
        return profile, resolve_frameworks(",".join(recording.frameworks), profile)
    return profile, resolve_frameworks(args.framework, profile)


def _replay_note(args: argparse.Namespace, recording, profile, frameworks) -> str:
    """Which selection a replay checks against, and where each part came from."""

    def origin(option: str, value: str | None) -> str:
        return f"from {option}" if value else "as recorded"

    return (
        f"replaying {args.replay}: profile {profile.name} ({origin('--expect', args.expect)}; "
        f"recorded: {recording.profile}), frameworks {','.join(frameworks)} "
        f"({origin('--framework', args.framework)}; recorded: "
        f"{','.join(recording.frameworks or ()) or '?'})"
    )


def _check_verify_args(args: argparse.Namespace) -> None:
    """Every option that can be wrong is refused before any work starts (exit 2)."""
    from .guard import check_output

    if args.min_accuracy is not None and not 0 < args.min_accuracy <= 1:
        raise EnvcheckError("--min-accuracy takes a fraction in (0, 1], e.g. 0.99", exit_code=2)
    if not math.isfinite(args.timeout_scale) or args.timeout_scale <= 0:
        raise EnvcheckError(
            f"--timeout-scale {args.timeout_scale} is not a positive finite number; "
            "give a factor such as 3",
            exit_code=2,
        )
    check_output(args.json, "--json")
    check_output(args.junit, "--junit")
    check_output(args.save_facts, "--save-facts")


def _profile_source(args: argparse.Namespace, recording=None) -> str:
    """Where the profile comes from; "infer": from the installed builds (none was named)."""
    from .profiles import PROFILE_ENV, PROFILES

    if args.expect:
        return "--expect"
    if recording is not None and recording.profile in PROFILES:
        return "recorded"  # a replay checks against what was expected when it was recorded
    return f"${PROFILE_ENV}" if os.environ.get(PROFILE_ENV) else "infer"


def _check_named_data_dir(data_dir: str | None) -> None:
    """A wrong --data-dir / ENVCHECK_DATA_DIR is an input error: say so before any check runs."""
    from .mnist.data import ENV_DATA_DIR, locate_mnist

    if data_dir or os.environ.get(ENV_DATA_DIR):
        try:
            # presence only (the training probe checks the digests), never a download
            locate_mnist(data_dir, download=False, verify=False)
        except EnvcheckError as exc:
            raise EnvcheckError(exc.message, exit_code=2) from None


def cmd_verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .checks import REGISTRY, Options
    from .guard import printing_survives, safe_text, warn_step_summary, write_output
    from .progress import Ticker
    from .report import json_report, junit, summary, terminal
    from .verify import load_recording, save_facts, verify

    _check_verify_args(args)
    recording = load_recording(args.replay) if args.replay else None
    profile, frameworks = _context_inputs(args, recording)
    options = Options(
        quick=args.quick,
        data_dir=args.data_dir,
        download=not args.no_download,
        min_accuracy=args.min_accuracy,
        timeout_scale=args.timeout_scale,
    )
    if recording is None and not args.no_training:
        _check_named_data_dir(args.data_dir)
    # facts saved with --no-training hold no training run: replaying them skips training too,
    # instead of failing it as if the env were broken
    untrained = recording is not None and recording.no_training
    skip_training = args.no_training or untrained
    left_out = {"training"} if skip_training else set()
    if args.no_compile:
        left_out.add("compile")
    checks = [c for c in REGISTRY if c.category not in left_out]
    console = Console(stderr=False)
    err = Console(stderr=True)
    if recording is not None:
        note = _replay_note(args, recording, profile, frameworks)
        if untrained and not args.no_training:
            note += "; training not replayed: the facts hold no training run (--no-training)"
        console.print(safe_text(note), soft_wrap=True)
    require_gpu = args.require_gpu or bool(recording and recording.require_gpu)
    with err.status("envcheck: starting") as status, Ticker(status) as ticker:
        report, ctx = verify(
            profile,
            frameworks,
            require_gpu,
            options,
            recorded=recording.facts if recording else None,
            checks=checks,
            profile_source=_profile_source(args, recording),
            framework_option=args.framework,
            on_start=lambda c: ticker.start(f"{c.category}.{c.name}"),
        )
    # The files first: whatever happens to stdout (`| head -1`, a terminal that cannot
    # encode a path) must not lose them.
    if args.json:
        write_output(args.json, json_report.to_json(report), "--json")
    if args.junit:
        write_output(args.junit, junit.to_junit(report), "--junit")
    if args.save_facts:
        save_facts(args.save_facts, ctx, no_training=skip_training)
    warn_step_summary(summary.to_markdown(report))
    printing_survives(lambda: terminal.render(report, console))
    return report.exit_code


def cmd_info(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .checks import Context, Options
    from .guard import check_output, write_output
    from .info import gather_info, render_info
    from .verify import gather_live

    check_output(args.json, "--json")
    profile, frameworks = _context_inputs(args)
    ctx = Context(profile, frameworks, args.require_gpu, Options(), gather_live)
    info = gather_info(ctx)
    render_info(info, Console())
    if args.json:
        write_output(args.json, json.dumps(info, indent=2, default=str) + "\n", "--json")
    return 0


def _tolerant_streams() -> None:
    """A terminal that cannot encode a character (PYTHONIOENCODING=ascii and a non-ASCII
    path) shows an escape for it instead of ending the run in a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass


def _run(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    container.require_temp_dir()
    if args.command == "verify":
        return cmd_verify(args)
    if args.command == "info":
        return cmd_info(args)
    if getattr(args, "unavailable", False):
        raise EnvcheckError(
            f"`envcheck {args.command}` is not available in this install", exit_code=2
        )
    return int(importlib.import_module(args.plugged).run(args))


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    try:
        # from the very start: Ctrl-C while the subcommands' modules import is no traceback
        with interrupts.handled():
            return _run(argv)
    except EnvcheckError as exc:
        from .guard import one_line

        # the message may quote a file, a server or a variable: no control sequence survives
        print(f"envcheck: error: {one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except interrupts.Interrupted as exc:
        # The processes and temp files of the run are gone by now (runner, fetch clean up).
        print(f"envcheck: interrupted by {exc.name}; nothing it started is left", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("envcheck: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # envcheck's own dependency (numpy reads MNIST)
        print(f"envcheck: error: {missing_module(exc)}", file=sys.stderr)
        return 1


def missing_module(exc: ModuleNotFoundError) -> str:
    """One line naming the module this Python lacks and how to get it."""
    name = (exc.name or str(exc)).split(".")[0]
    return (
        f"{name} is not installed in this Python ({sys.executable}), and envcheck needs it "
        f"here; install it (`{sys.executable} -m pip install {name}`) or run envcheck from the "
        "pixi environment (pixi run --locked verify)"
    )


if __name__ == "__main__":
    sys.exit(main())
