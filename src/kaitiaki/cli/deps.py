"""``kaitiaki deps``: the installed packages against the hash-pinned locks and
an advisory snapshot, their licences, and pip-audit's online check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "cmd_deps",
    "cmd_deps_audit",
    "cmd_deps_licences",
    "cmd_deps_pip_audit",
    "cmd_deps_verify",
]

_LOCKS = ["requirements.lock", "requirements-dev.lock"]
_BENCH_LOCK = "requirements-bench.lock"


def cmd_deps_verify(args: argparse.Namespace) -> int:
    from kaitiaki.deps import read_lock, verify_environment

    locked = [req for path in args.lock for req in read_lock(Path(path))]
    # With the default locks, the benchmark's extras (bench/run installs
    # them) may be present too, pinned and hashed like the rest.
    bench = Path(_BENCH_LOCK)
    default = list(args.lock) == _LOCKS
    optional = read_lock(bench) if default and bench.exists() else []
    problems = verify_environment(locked, optional=optional)
    for problem in problems:
        print(f"MISMATCH {problem}")
    print(f"deps verify: {len(locked)} locked, {len(problems)} discrepancies")
    return 1 if problems else 0


def _audited_requirements(args: argparse.Namespace) -> list[Any]:
    from kaitiaki.deps import read_lock
    from kaitiaki.deps.sbom import read_sbom

    paths = args.requirements or ([] if args.sbom else list(_LOCKS))
    requirements = [req for path in paths for req in read_lock(Path(path))]
    return requirements + [req for path in args.sbom for req in read_sbom(Path(path))]


def cmd_deps_audit(args: argparse.Namespace) -> int:
    import datetime as dt

    from kaitiaki.deps import audit_requirements, load_advisories
    from kaitiaki.deps.advisories import read_ignores

    advisories = load_advisories(Path(args.advisories))
    ignores = read_ignores(Path(args.ignore)) if Path(args.ignore).exists() else []
    requirements = _audited_requirements(args)
    findings = audit_requirements(
        requirements, advisories, ignores=ignores, today=dt.date.today()
    )
    open_findings = [f for f in findings if f.ignored_because is None]
    for finding in findings:
        state = (
            f"IGNORED ({finding.ignored_because})"
            if finding.ignored_because
            else "VULNERABLE"
        )
        fixed = ", ".join(finding.fixed) or "no fixed version"
        print(
            f"{state} {finding.name}=={finding.version} {finding.advisory} "
            f"{' '.join(finding.aliases)} fixed in: {fixed}"
        )
    print(
        f"deps audit: {len(requirements)} pinned requirements checked against the "
        f"advisory snapshot of {advisories.snapshot or 'unknown date'}: "
        f"{len(open_findings)} known vulnerabilities, "
        f"{len(findings) - len(open_findings)} ignored"
    )
    return 1 if open_findings else 0


def cmd_deps_licences(args: argparse.Namespace) -> int:
    from kaitiaki.deps.licences import licence_report

    entries = licence_report()
    unknown = sum(entry.licence == "UNKNOWN" for entry in entries)
    text = "".join(f"{e.name}=={e.version}\t{e.licence}\n" for e in entries)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    print(f"deps licences: {len(entries)} distributions, {unknown} without a licence")
    return 0


def cmd_deps_pip_audit(args: argparse.Namespace) -> int:
    from kaitiaki.deps.pipaudit import run_pip_audit

    executable = Path(sys.executable).with_name("pip-audit")
    summary = run_pip_audit(executable, args.requirements or _LOCKS, args.timeout)
    print(summary.line())
    return 1 if summary.vulnerable else 0


def cmd_deps(args: argparse.Namespace) -> int:
    commands = {
        "verify": cmd_deps_verify,
        "audit": cmd_deps_audit,
        "licences": cmd_deps_licences,
        "pip-audit": cmd_deps_pip_audit,
    }
    return commands[args.deps_command](args)


def _deps_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    deps = commands.add_parser("deps", help="check dependencies", parents=[common])
    deps_commands = deps.add_subparsers(dest="deps_command", required=True)
    verify = deps_commands.add_parser(
        "verify", help="installed files against the lock files"
    )
    verify.add_argument(
        "--lock",
        action="append",
        default=None,
        help="lock file (default: requirements.lock and requirements-dev.lock)",
    )
    audit = deps_commands.add_parser(
        "audit", help="pinned requirements against an OSV advisory snapshot"
    )
    audit.add_argument(
        "--advisories",
        default="../shared/data/pypa-advisories",
        help="folder of an OSV-format advisory snapshot, e.g. a checkout of "
        "github.com/pypa/advisory-database (default: %(default)s)",
    )
    audit.add_argument(
        "--requirements",
        action="append",
        default=None,
        help="pinned requirements file (default: the lock files); repeatable",
    )
    audit.add_argument(
        "--sbom",
        action="append",
        default=[],
        help="CycloneDX JSON SBOM whose PyPI components to audit; repeatable",
    )
    audit.add_argument("--ignore", default="deps-ignore.toml")
    licences = deps_commands.add_parser(
        "licences", help="licence of every installed distribution"
    )
    licences.add_argument("--output", help="write the report here")
    online = deps_commands.add_parser(
        "pip-audit", help="pip-audit's online check, 'unavailable' when unreachable"
    )
    online.add_argument("--requirements", action="append", default=None)
    online.add_argument("--timeout", type=float, default=60.0)
