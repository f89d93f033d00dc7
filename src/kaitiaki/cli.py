"""The ``kaitiaki`` command: the only place that reads the environment,
configures logging and prints."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kaitiaki.errors import KaitiakiError
from kaitiaki.settings import Settings, load_settings

logger = logging.getLogger("kaitiaki.cli")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _serve_asgi(app: Any, host: str, port: int, tls: Settings | None = None) -> None:
    import uvicorn

    from kaitiaki.iam.listeners import server_config

    uvicorn.Server(server_config(app, host, port)).run()


def _checked_settings(args: argparse.Namespace) -> Settings:
    from kaitiaki.iam.startup import refuse_unsafe_start, secret_store

    settings = _settings(args)
    refuse_unsafe_start(settings, secret_store(settings, os.environ))
    return settings


_WORKER_CONFIG = "KAITIAKI_WORKER_CONFIG"


def gateway_worker() -> Any:
    """The app factory each worker process calls when ``gateway.workers > 1``.

    Every worker gets its own instance name, so that each keeps its own audit
    chain and its events say which process served them.
    """
    from kaitiaki.gateway.app import Gateway

    path = os.environ.get(_WORKER_CONFIG) or None
    settings = load_settings(path)
    gateway = settings.gateway.model_copy(
        update={"instance": f"{settings.gateway.instance}-{os.getpid()}"}
    )
    return Gateway(settings.model_copy(update={"gateway": gateway}), environ=os.environ)


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """Several gateway processes sharing one listening socket."""
    from uvicorn.supervisors import Multiprocess

    from kaitiaki.iam.listeners import server_config

    if settings.gateway.tls_cert is not None:
        # Each worker would build its own TLS context, without the protocol
        # floor that harden() sets on a single listener's.
        raise KaitiakiError(
            "gateway.workers > 1 cannot terminate TLS itself; terminate TLS in "
            "front of the workers, or run one worker per instance"
        )
    if settings.admin.enabled:
        # The admin plane shares the gateway's event loop (its kill switch,
        # caches and sink), which one worker process of many cannot offer.
        raise KaitiakiError(
            "gateway.workers > 1 cannot run with [admin] enabled = true; run the "
            "admin plane on a single-worker gateway instance"
        )
    os.environ[_WORKER_CONFIG] = str(Path(args.config).resolve()) if args.config else ""
    config = server_config(
        "kaitiaki.cli:gateway_worker",
        settings.gateway.host,
        settings.gateway.port,
        factory=True,
        workers=settings.gateway.workers,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


def _gateway_config(app: Any, settings: Settings) -> Any:
    """The gateway listener's server settings: TLS 1.3 (or 1.2 by name) and
    optional client certificates when ``gateway.tls_cert`` is set."""
    from kaitiaki.gateway.tls import harden, listener_config
    from kaitiaki.iam.listeners import server_config

    options = listener_config(settings.gateway)
    config = server_config(app, settings.gateway.host, settings.gateway.port, **options)
    if options:
        config.load()
        harden(config.ssl, settings.gateway)
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    from kaitiaki.gateway.app import Gateway

    settings = _checked_settings(args)
    if settings.gateway.workers > 1:
        return _serve_workers(args, settings)
    gateway = Gateway(settings, environ=os.environ)
    _reload_limits_on_sighup(gateway, args)
    config = _gateway_config(gateway, settings)
    if not settings.admin.enabled:
        import uvicorn

        uvicorn.Server(config).run()
        return 0

    from kaitiaki.iam.admin import create_admin_app
    from kaitiaki.iam.listeners import serve_together
    from kaitiaki.iam.policy import load_policies

    policies = load_policies(settings.admin.policy_file)
    admin = create_admin_app(gateway, policies, lambda: _checked_settings(args))
    serve_together(config, admin, settings.admin)
    return 0


def _reload_limits_on_sighup(gateway: Any, args: argparse.Namespace) -> None:
    """SIGHUP rereads the settings file and applies its ``[limits]``."""
    import signal

    def reload(signum: int, frame: object) -> None:
        if gateway.limits is None:
            return
        try:
            gateway.limits.reload(_settings(args).limits)
        except KaitiakiError as exc:
            logger.error("limits not reloaded: %s", exc)

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, reload)


def cmd_issuer(args: argparse.Namespace) -> int:
    from kaitiaki.issuer import create_app

    issuer = _settings(args).dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    _serve_asgi(create_app(issuer), issuer.host, issuer.port)
    return 0


def cmd_refapi(args: argparse.Namespace) -> int:
    from kaitiaki.iam import SecretStore
    from kaitiaki.refapi import create_app

    refapi = _settings(args).refapi
    if refapi is None:
        raise KaitiakiError("the settings have no [refapi] section")
    app = create_app(refapi, secrets=SecretStore(os.environ))
    _serve_asgi(app, refapi.host, refapi.port)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from kaitiaki.issuer.client import fetch_token_sync

    settings = _settings(args)
    issuer = settings.dev_issuer
    if issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    client = next((c for c in issuer.clients if c.client_id == args.client), None)
    if client is None:
        raise KaitiakiError(f"no demo client named {args.client!r} in [dev_issuer]")
    dpop_key = _dpop_key(Path(args.dpop_key)) if args.dpop_key else None
    response = fetch_token_sync(
        settings.auth.issuer,
        client.client_id,
        Path(client.key_path),
        scope=args.scope,
        resource=args.resource,
        dpop_key=dpop_key,
    )
    print(response.access_token)
    return 0


def _dpop_key(path: Path) -> Any:
    """The client's DPoP key: loaded, or created (owner-only) on first use."""
    from kaitiaki.issuer.keys import (
        generate_signing_key,
        load_private_key,
        write_private_key,
    )

    if not path.exists():
        write_private_key(path, generate_signing_key())
    return load_private_key(path)


def cmd_dpop_proof(args: argparse.Namespace) -> int:
    import secrets
    import time

    from kaitiaki.issuer.client import build_dpop_proof

    stdin = args.token == "-"  # noqa: S105 (the stdin marker, not a secret)
    token = sys.stdin.readline().strip() if stdin else args.token
    proof = build_dpop_proof(
        _dpop_key(Path(args.key)),
        args.method.upper(),
        args.url,
        token or None,
        now=int(time.time()),
        jti=secrets.token_urlsafe(24),
    )
    print(proof)
    return 0


def _audit_query(args: argparse.Namespace) -> Any:
    from kaitiaki.audit import Query
    from kaitiaki.audit.commands import patient_hash

    patient = getattr(args, "patient_hash", None)
    if getattr(args, "patient", None):
        patient = patient_hash(_settings(args).audit, args.patient)
    return Query(
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        client_id=getattr(args, "client", None),
        outcome=getattr(args, "outcome", None),
        correlation_id=getattr(args, "correlation_id", None),
        patient=patient,
        event_type=getattr(args, "type", None),
    )


def cmd_audit(args: argparse.Namespace) -> int:
    from kaitiaki.audit.commands import (
        export_lines,
        search_events,
        verify_report,
        verify_sink,
    )

    settings = _settings(args).audit
    if args.audit_command == "rotate-key":
        from kaitiaki.audit.keys import rotate_checkpoint_key

        key_id = rotate_checkpoint_key(settings)
        print(f"new checkpoint key {key_id}; the gateway signs with it after a restart")
        return 0
    if args.audit_command == "verify":
        reports = verify_sink(settings, [Path(p) for p in args.public_key])
        print("\n".join(verify_report(reports)))
        return 0 if all(report.ok for report in reports) else 1
    records = search_events(settings, _audit_query(args), limit=args.limit)
    fmt = getattr(args, "format", "jsonl")
    for line in export_lines(records, fmt):
        print(line)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kaitiaki.demo import DemoProcesses
    from kaitiaki.issuer import ensure_state

    settings = _settings(args)
    if settings.dev_issuer is None:
        raise KaitiakiError("the settings have no [dev_issuer] section")
    ensure_state(settings.dev_issuer)
    processes = DemoProcesses(settings, args.config)
    processes.start()
    base = settings.gateway.base_url
    print(
        f"\nKaitiaki demo is running (Ctrl-C stops it):\n"
        f"  gateway            {base}\n"
        f"  issuer             {settings.auth.issuer}\n"
        f"  reference FHIR API {settings.refapi.url if settings.refapi else '-'}\n\n"
        f"Try:\n"
        f"  TOKEN=$(.venv/bin/kaitiaki token)\n"
        f'  curl -s -H "Authorization: Bearer $TOKEN" '
        f"-H 'Accept: application/fhir+json' '{base}/Patient?_count=2'\n"
        f"  curl -s -i '{base}/Patient'      # no token: 401\n"
        f"  .venv/bin/kaitiaki audit tail    # one audit event per request\n"
        f"{_admin_hint(settings)}",
        flush=True,
    )
    return processes.wait()


def _admin_hint(settings: Settings) -> str:
    admin = settings.admin
    if not admin.enabled:
        return ""
    return (
        f"\nAdmin plane on http://{admin.host}:{admin.port}/admin (loopback):\n"
        f"  ADMIN=$(.venv/bin/kaitiaki token --client demo-admin "
        f"--resource {admin.audience})\n"
        f'  curl -s -H "Authorization: Bearer $ADMIN" '
        f"http://{admin.host}:{admin.port}/admin/config\n"
    )


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


def cmd_keys(args: argparse.Namespace) -> int:
    import time

    from kaitiaki.iam.rotation import key_listing, rotate_key

    settings = _settings(args)
    if args.keys_command == "rotate":
        rotation = rotate_key(args.kind, settings, int(time.time()))
        until = (
            "keeps verifying the checkpoints it signed"
            if rotation.verify_until == 0
            else "verifies until "
            + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rotation.verify_until))
        )
        print(
            f"rotated {rotation.kind}: new key {rotation.new_kid}; "
            f"{rotation.retired_kid or 'no previous key'} {until}"
        )
        return 0
    for kind, kid, path in key_listing(settings):
        print(f"{kind:18} {kid}  {path}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from kaitiaki.iam.checkconfig import check_config, exit_status

    findings = check_config(Path(args.file))
    for finding in findings:
        print(finding)
    status = exit_status(
        findings, strict=args.strict, allow_examples=args.allow_examples
    )
    counts = {
        level: sum(f.level == level for f in findings)
        for level in ("error", "warning", "example")
    }
    print(
        f"check-config {args.file}: {counts['error']} errors, "
        f"{counts['warning']} warnings, {counts['example']} example values"
    )
    return status


def cmd_deps(args: argparse.Namespace) -> int:
    commands = {
        "verify": cmd_deps_verify,
        "audit": cmd_deps_audit,
        "licences": cmd_deps_licences,
        "pip-audit": cmd_deps_pip_audit,
    }
    return commands[args.deps_command](args)


def cmd_probe(args: argparse.Namespace) -> int:
    from rich.console import Console

    from kaitiaki.probe import (
        Severity,
        demo_profile,
        exit_status,
        load_profile,
        run_probe,
        select_checks,
        write_reports,
    )
    from kaitiaki.probe.terminal import live_progress, print_summary

    if args.demo == bool(args.profile):
        raise KaitiakiError("give exactly one of --profile PROFILE.toml or --demo")
    profile = demo_profile(_settings(args)) if args.demo else load_profile(args.profile)
    # httpx logs every request line at INFO, and a probe URL may carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    console = Console(stderr=True)
    checks = select_checks(args.only or ())
    with live_progress(console, len(checks)) as progress:
        report = run_probe(
            args.base_url, profile, only=args.only or (), progress=progress
        )
    print_summary(console, report)
    if args.output:
        for path in write_reports(report, Path(args.output)):
            console.print(f"wrote {path}", highlight=False)
    return exit_status(report, Severity(args.fail_on))


def _probe_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    probe = commands.add_parser(
        "probe",
        help="test a deployed API against the cloud API security standard",
        parents=[common],
    )
    probe.add_argument("base_url", help="the FHIR base URL, e.g. https://api/fhir")
    probe.add_argument("--profile", help="probe profile (TOML)")
    probe.add_argument(
        "--demo", action="store_true", help="probe the local demo (make run)"
    )
    probe.add_argument("--output", help="folder for the JSON, JUnit, SARIF, HTML")
    probe.add_argument(
        "--fail-on",
        default="high",
        choices=["low", "medium", "high", "critical"],
        help="exit 1 when a check of this severity or above fails (default high)",
    )
    probe.add_argument(
        "--only", action="append", help="run only checks whose id starts so"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kaitiaki", description=__doc__)
    parser.add_argument("--config", help="settings file (default: the demo settings)")
    # --config may also follow the subcommand: `kaitiaki serve --config x.toml`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "start issuer, reference API and gateway"),
        ("serve", "run the gateway"),
        ("issuer", "run the development authorisation server"),
        ("refapi", "run the reference FHIR API"),
    ):
        commands.add_parser(name, help=text, parents=[common])
    token = commands.add_parser(
        "token", help="get an access token from the issuer", parents=[common]
    )
    token.add_argument("--client", default="demo-system")
    token.add_argument("--scope", default=None)
    token.add_argument(
        "--resource", default=None, help="e.g. kaitiaki-admin for an admin token"
    )
    token.add_argument(
        "--dpop-key", default=None, help="bind the token to this key (DPoP)"
    )
    _dpop_parser(commands, common)
    audit = commands.add_parser("audit", help="read the audit trail", parents=[common])
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    tail = audit_commands.add_parser(
        "tail", help="print the latest events", parents=[common]
    )
    tail.add_argument("--limit", type=int, default=20)
    _audit_parsers(audit_commands, common)
    _deps_parser(commands, common)
    _probe_parser(commands, common)
    _keys_parser(commands, common)
    check = commands.add_parser(
        "check-config", help="report what in a settings file weakens the gateway"
    )
    check.add_argument("file")
    check.add_argument("--strict", action="store_true", help="warnings fail too")
    check.add_argument(
        "--allow-examples",
        action="store_true",
        help="documentation placeholders do not fail (for the example file)",
    )
    return parser


def _keys_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    from kaitiaki.iam.keyring import KEY_KINDS

    keys = commands.add_parser("keys", help="the keys Kaitiaki holds", parents=[common])
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    keys_commands.add_parser(
        "list", help="generate missing keys; show the current ones", parents=[common]
    )
    rotate = keys_commands.add_parser(
        "rotate",
        help="new current key; the old one verifies for the overlap",
        parents=[common],
    )
    rotate.add_argument("kind", choices=KEY_KINDS)


def _audit_parsers(commands: Any, common: argparse.ArgumentParser) -> None:
    verify = commands.add_parser(
        "verify", help="check the hash chains and signed checkpoints", parents=[common]
    )
    verify.add_argument(
        "--public-key",
        action="append",
        default=[],
        help="another instance's checkpoint public JWK file; repeatable",
    )
    commands.add_parser(
        "rotate-key", help="retire the checkpoint signing key", parents=[common]
    )
    search = commands.add_parser("search", help="find events", parents=[common])
    export = commands.add_parser(
        "export", help="events as FHIR AuditEvents or JSON Lines", parents=[common]
    )
    export.add_argument("--format", choices=("fhir", "jsonl"), default="jsonl")
    for parser in (search, export):
        parser.add_argument("--since", help="ISO time, inclusive (UTC)")
        parser.add_argument("--until", help="ISO time, exclusive (UTC)")
        parser.add_argument("--client", help="client id")
        parser.add_argument("--outcome", choices=("served", "refused", "failed"))
        parser.add_argument("--correlation-id")
        parser.add_argument("--patient", help="a patient identifier (hashed here)")
        parser.add_argument("--patient-hash", help="a recorded patient hash")
        parser.add_argument("--type", choices=("request", "security", "checkpoint"))
        parser.add_argument("--limit", type=int, default=1000)


def _dpop_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    proof = commands.add_parser(
        "dpop-proof", help="print a DPoP proof for one request", parents=[common]
    )
    proof.add_argument("--key", required=True, help="private JWK file (created)")
    proof.add_argument("--method", default="GET")
    proof.add_argument("--url", required=True, help="the request URL (htu)")
    proof.add_argument("--token", default="-", help="access token, '-' for stdin")


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


_LOCKS = ["requirements.lock", "requirements-dev.lock"]
_BENCH_LOCK = "requirements-bench.lock"


_COMMANDS = {
    "demo": cmd_demo,
    "serve": cmd_serve,
    "issuer": cmd_issuer,
    "refapi": cmd_refapi,
    "token": cmd_token,
    "dpop-proof": cmd_dpop_proof,
    "audit": cmd_audit,
    "deps": cmd_deps,
    "probe": cmd_probe,
    "keys": cmd_keys,
    "check-config": cmd_check_config,
}


def _configure_logging(level: str) -> None:
    """Diagnostic logs to stderr, every record redacted (even at DEBUG); the
    audit stream never goes through logging."""
    from kaitiaki.audit.redact import RedactingFilter

    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "lock") and args.lock is None:
        args.lock = list(_LOCKS)
    _configure_logging(os.environ.get("KAITIAKI_LOG_LEVEL", "INFO"))
    try:
        return _COMMANDS[args.command](args)
    except KaitiakiError as exc:
        print(f"kaitiaki: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
