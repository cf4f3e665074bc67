"""Would pixi accept this lock for this manifest without re-solving?

Mirrors pixi's satisfiability rules: the channels and platforms of each environment match the
manifest, every manifest spec is satisfied by a locked record, the closure is consistent (each
dependency present and matching, every `constrains` honoured, virtual packages provided by the
platform) and the lock holds no record the environment does not need.
"""

from __future__ import annotations

from collections import deque
from functools import cache
from typing import Any

from .findings import Finding, Scope
from .lockfile import EXPECTED_VERSION, Lock, LockedEnv, LockedPlatform, solve_options
from .manifest import EnvDecl, EnvPlatform, Manifest
from .virtuals import customised, default_virtuals, for_solver

RELOCK = "re-lock: `pixi lock` (offline: tools/lockgen.py)"
CHECK = "satisfiability"

# Manifest option names -> the lock's `options:` keys.
_OPTION_KEYS = {
    "solve-strategy": "strategy",
    "channel-priority": "channel-priority",
    "exclude-newer": "exclude-newer",
}


@cache
def _parsed(text: str) -> tuple[Any, str]:
    """(MatchSpec or None, normalized name), cached: the same dependency strings repeat across
    environments and platforms, and parsing dominates the audit's run time."""
    from rattler import MatchSpec

    try:
        spec = MatchSpec(text)
    except Exception:  # py-rattler's InvalidMatchSpecError
        return None, ""
    return spec, spec.name.normalized


def spec_or_none(text: str) -> Any:
    return _parsed(text)[0]


def record_label(rec: Any) -> str:
    return f"{rec.name.normalized} {rec.version} {rec.build}"


def check_lock(manifest: Manifest, lock: Lock, env_names: list[str]) -> list[Finding]:
    out: list[Finding] = []
    if lock.version is not None and lock.version != EXPECTED_VERSION:
        out.append(
            Scope("lock", "*", "*").error(
                "pixi.lock",
                f"lock file format v{lock.version}; this workspace needs "
                f"v{EXPECTED_VERSION} (pixi >= 0.68)",
                RELOCK,
            )
        )
    for name in lock.envs:
        if name not in manifest.envs:
            out.append(
                Scope(CHECK, name, "*").error(
                    "-",
                    f"environment {name!r} is in the lock but not in the manifest",
                    RELOCK,
                )
            )
    for pname in lock.platforms:
        if pname not in manifest.platforms:
            out.append(
                Scope(CHECK, "*", pname).warning(
                    "-",
                    f"the lock has platform {pname}, which the manifest does not declare",
                    RELOCK,
                )
            )
    out += _check_solve_groups(manifest, lock, env_names)
    options = solve_options(lock.text)
    for name in env_names:
        env = manifest.envs[name]
        locked = lock.envs.get(name)
        if locked is None:
            out.append(
                Scope(CHECK, name, "*").error(
                    "-", f"environment {name!r} is missing from the lock", RELOCK
                )
            )
            continue
        out += _check_env(env, locked, lock, options.get(name, {}))
    return out


def _check_env(
    env: EnvDecl, locked: LockedEnv, lock: Lock, options: dict[str, str]
) -> list[Finding]:
    out: list[Finding] = []
    name = env.name
    if locked.channels != env.channels:
        same = set(locked.channels) == set(env.channels)
        cause = f"lock channels {locked.channels} differ from the manifest's {env.channels}" + (
            " (order)" if same else ""
        )
        out.append(Scope(CHECK, name, "*").error("-", cause, RELOCK))
    for key, lock_key in _OPTION_KEYS.items():
        want, have = env.options.get(key), options.get(lock_key)
        if key == "channel-priority" and want == "strict":
            want = None  # pixi's default, not written to the lock
        if key == "solve-strategy" and want == "highest":
            want = None
        if not _same_option(want, have):
            out.append(
                Scope(CHECK, name, "*").error(
                    "-",
                    f"solve option {key} is {want or 'default'} in the manifest but "
                    f"{have or 'default'} in the lock",
                    RELOCK,
                )
            )
    for pname in env.platforms:
        if pname not in locked.platforms:
            out.append(
                Scope(CHECK, name, pname).error(
                    "-",
                    f"platform {pname} of environment {name!r} is not in the lock",
                    RELOCK,
                )
            )
    for pname in locked.platforms:
        if pname not in env.platforms:
            out.append(
                Scope(CHECK, name, pname).error(
                    "-",
                    f"the lock has platform {pname} that environment {name!r} does not declare",
                    RELOCK,
                )
            )
    for pname, ep in env.platforms.items():
        if pname in locked.platforms:
            lp = lock.platforms.get(pname, locked.platforms[pname])
            out += _check_platform_entry(name, ep, lp)
            out += check_records(
                name, ep, lp, locked.records.get(pname, []), locked.pypi.get(pname, [])
            )
    return out


def _check_solve_groups(manifest: Manifest, lock: Lock, env_names: list[str]) -> list[Finding]:
    """Environments of one solve-group are solved together: a package they share must be the
    same record in each of them, per platform."""
    groups: dict[str, list[str]] = {}
    for name, env in manifest.envs.items():
        if env.solve_group and name in lock.envs:
            groups.setdefault(env.solve_group, []).append(name)
    out = []
    for group, members in groups.items():
        if len(members) < 2 or not any(m in env_names for m in members):
            continue
        seen: dict[tuple[str, str], tuple[str, Any]] = {}
        reported = set()
        for member in members:
            for pname, records in lock.envs[member].records.items():
                for rec in records:
                    key = (pname, rec.name.normalized)
                    first = seen.setdefault(key, (member, rec))
                    if first[1].url != rec.url and key not in reported:
                        reported.add(key)
                        out.append(
                            Scope(CHECK, member, pname).error(
                                key[1],
                                f"solve-group {group}: {first[0]} locks "
                                f"{first[1].file_name} but {member} locks "
                                f"{rec.file_name}",
                                RELOCK,
                            )
                        )
    return out


def _same_option(want: str | None, have: str | None) -> bool:
    if want and have:  # exclude-newer: a date in the manifest, maybe a timestamp in the lock
        return have.startswith(want) or want.startswith(have)
    return want == have


def _check_platform_entry(env: str, ep: EnvPlatform, lp: LockedPlatform) -> list[Finding]:
    """pixi's PlatformDefinitionChanged (pixi_core lock_file/satisfiability/environment.rs):
    for every lock platform the environment uses, plain ones included, the subdir and the
    exact set of virtual packages that are not the subdir's defaults must equal the manifest's
    (compared as `__name=version[=build]` strings). Any difference makes pixi discard the
    environment's locked records and re-solve."""
    decl = ep.platform
    at = Scope(CHECK, env, lp.name)
    if lp.subdir != decl.subdir:
        return [
            at.error(
                "-",
                f"lock platform {lp.name} is subdir {lp.subdir}, manifest says {decl.subdir}",
                RELOCK,
            )
        ]
    want = customised(decl.subdir, ep.declared.values())
    have = customised(decl.subdir, lp.virtual)
    if want == have:
        return []
    missing = [v for v in want if v not in have]
    extra = [v for v in have if v not in want]
    parts = []
    if missing:
        parts.append(f"the lock lacks {', '.join(missing)}")
    if extra:
        parts.append(f"the lock adds {', '.join(extra)}")
    declared = ", ".join(want) or "no virtual packages beyond the subdir defaults"
    return [
        at.error(
            (missing or extra)[0].split("=")[0],
            f"platform {decl.name} declares {declared}, but {' and '.join(parts)} "
            "(pixi re-solves: PlatformDefinitionChanged)",
            RELOCK,
        )
    ]


def virtual_records(ep: EnvPlatform) -> dict[str, Any]:
    """The virtual packages a solve of this env x platform may use, as PackageRecords.

    Only the manifest's: pixi's defaults for the subdir with what the platform (and
    [system-requirements]) declares on top. The lock entry's own list is not used: pixi checks
    the locked records against the workspace platform (platform_setup.rs), and a lock entry
    that differs from it is already PlatformDefinitionChanged. __archspec as solved (version
    1, see for_solver).
    """
    from rattler import BuildString, PackageRecord

    subdir = ep.platform.subdir
    merged = {vp.name: vp for vp in default_virtuals(subdir)}
    if ep.declared.keys() & {"__musl", "__eglibc"}:
        merged.pop("__glibc", None)  # another libc replaces the default glibc
    merged.update(ep.declared)
    out = {}
    for vp in map(for_solver, merged.values()):
        try:
            out[vp.name] = PackageRecord(
                vp.name, vp.version or "0", BuildString(vp.build or "0"), 0, subdir
            )
        except Exception:  # an unparsable version: treat as not provided
            continue
    return out


def check_records(
    env: str, ep: EnvPlatform, lp: LockedPlatform, records: list[Any], pypi: list[Any]
) -> list[Finding]:
    """Specs satisfied, closure consistent, no extra records, for one env x platform."""
    out: list[Finding] = []
    plat = lp.name
    at = Scope(CHECK, env, plat)
    by_name: dict[str, Any] = {}
    for rec in records:
        key = rec.name.normalized
        if key in by_name:
            out.append(
                at.error(
                    key,
                    f"two records for {key}: {by_name[key].file_name} and {rec.file_name}",
                    RELOCK,
                )
            )
        by_name.setdefault(key, rec)
    virtual = virtual_records(ep)

    queue: deque[str] = deque()
    for pkg, specs in ep.specs.items():
        for text in specs:
            spec = spec_or_none(text)
            if spec is None:
                out.append(
                    Scope("manifest", env, plat).error(
                        pkg,
                        f"manifest spec {text!r} does not parse",
                        "fix pixi.toml",
                    )
                )
                continue
            key = spec.name.normalized
            rec = by_name.get(key)
            if rec is None:
                out.append(
                    at.error(
                        key,
                        f"manifest requires '{text}' but no {key} record is locked",
                        RELOCK,
                    )
                )
            elif not spec.matches(rec):
                out.append(
                    at.error(
                        key,
                        f"locked {record_label(rec)} does not satisfy manifest spec '{text}'",
                        RELOCK,
                    )
                )
            queue.append(key)

    reached: set[str] = set()
    # (kind, package) -> [(record, dependency)]: one finding per broken package, not one per
    # dependent (a missing libzlib is needed by dozens of records).
    problems: dict[tuple[str, str], list[tuple[Any, str]]] = {}
    while queue:
        key = queue.popleft()
        if key in reached or key not in by_name:
            continue
        reached.add(key)
        rec = by_name[key]
        for dep in rec.depends:
            dep_key = _check_dep(problems, rec, dep, by_name, virtual)
            if dep_key and dep_key not in reached:
                queue.append(dep_key)
    out += _dep_findings(env, plat, problems, by_name, virtual)

    for rec in records:
        for text in rec.constrains:
            _check_constraint(out, env, plat, rec, text, by_name, virtual)
    for specs in ep.constraints.values():
        for text in specs:
            _check_constraint(out, env, plat, None, text, by_name, virtual)

    for key, rec in by_name.items():
        if key not in reached:
            out.append(
                at.error(
                    key,
                    f"extra record {record_label(rec)}: nothing in the env needs it "
                    "(pixi rejects locks with more packages than needed)",
                    RELOCK,
                )
            )
    out += _check_pypi(env, plat, ep, pypi)
    for pkg in ep.source:
        out.append(
            at.warning(
                pkg,
                f"{pkg} is a source (path/git/url) dependency, not audited",
                "depend on a conda-forge package instead",
            )
        )
    return out


def _check_dep(
    problems: dict[tuple[str, str], list[tuple[Any, str]]],
    rec: Any,
    dep: str,
    by_name: dict[str, Any],
    virtual: dict[str, Any],
) -> str | None:
    """Check one dependency of `rec`; return the package name to walk on to, if any."""
    spec, key = _parsed(dep)
    if spec is None:
        problems.setdefault(("unparsable", rec.name.normalized), []).append((rec, dep))
        return None
    if key.startswith("__"):
        vp = virtual.get(key)
        if vp is None or not spec.matches(vp):
            problems.setdefault(("virtual", key), []).append((rec, dep))
        return None
    target = by_name.get(key)
    if target is None:
        problems.setdefault(("missing", key), []).append((rec, dep))
        return None
    if not spec.matches(target):
        problems.setdefault(("mismatch", key), []).append((rec, dep))
    return key


def _dep_findings(
    env: str,
    plat: str,
    problems: dict[tuple[str, str], list[tuple[Any, str]]],
    by_name: dict[str, Any],
    virtual: dict[str, Any],
) -> list[Finding]:
    at = Scope(CHECK, env, plat)
    out = []
    for (kind, key), hits in problems.items():
        rec, dep = hits[0]
        example = f"{record_label(rec)} needs '{dep}'"
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        if kind == "missing":
            cause = f"missing dependency: no {key} is locked but {example}{more}"
        elif kind == "mismatch":
            cause = f"{example} but the lock has {record_label(by_name[key])}{more}"
        elif kind == "virtual":
            vp = virtual.get(key)
            have = f"{key}={vp.version}" if vp is not None else f"no {key}"
            cause = f"{example} but platform {plat} provides {have}{more}"
            out.append(at.error(rec.name.normalized, cause, _virtual_fix(key)))
            continue
        else:
            out.append(
                at.warning(
                    key,
                    f"{record_label(rec)} has an unparsable dependency {dep!r}",
                    RELOCK,
                )
            )
            continue
        out.append(at.error(key, cause, RELOCK))
    return out


def _check_constraint(
    out: list[Finding],
    env: str,
    plat: str,
    owner: Any,
    text: str,
    by_name: dict[str, Any],
    virtual: dict[str, Any],
) -> None:
    at = Scope(CHECK, env, plat)
    spec, key = _parsed(text)
    if spec is None:
        return
    # A constraint binds only when the package (or virtual package) is present.
    target = virtual.get(key) if key.startswith("__") else by_name.get(key)
    if target is not None and not spec.matches(target):
        label = f"{key}={target.version}" if key.startswith("__") else record_label(target)
        who = f"{record_label(owner)} constrains" if owner is not None else "manifest constraint"
        out.append(
            at.error(
                key,
                f"{who} '{text}' but the lock has {label}",
                RELOCK if not key.startswith("__") else _virtual_fix(key),
            )
        )


def _virtual_fix(key: str) -> str:
    if key == "__cuda":
        return (
            "declare cuda on the platform (a CUDA build in a CPU env?) or pin a build "
            "this CUDA version supports, then re-lock"
        )
    return f"declare {key} on the platform in pixi.toml or pin an older build, then re-lock"


def _check_pypi(env: str, plat: str, ep: EnvPlatform, pypi: list[Any]) -> list[Finding]:
    at = Scope(CHECK, env, plat)

    def norm(name: str) -> str:
        return name.lower().replace("_", "-").replace(".", "-")

    locked = {norm(p.name) for p in pypi}
    return [
        at.error(name, f"PyPI dependency {name} is not in the lock", RELOCK)
        for name in ep.pypi
        if norm(name) not in locked
    ]
