"""``kaitiaki.protect`` beside the bare application and ``kaitiaki serve``.

Run: ``.venv/bin/python -W ignore bench/protect_bench.py [--rounds 3]``
(needs nginx and wrk, which ``bench/run`` installs).

Three ways of serving the same 1 KB FHIR Patient from a small Starlette
application, each under uvicorn on a loopback port, loaded by wrk with the
gateway bench's realistic request (bearer token, FHIR Accept,
Request-Context), in interleaved rounds:

1. ``app``: the application alone, no controls (the anchor);
2. ``app+protect``: the application behind ``kaitiaki.protect``, the whole
   pipeline in its process (the full pipeline's settings of the gateway
   bench: in-memory limits, batched SQLite audit);
3. ``serve+app``: ``kaitiaki serve`` with the same settings in front of the
   bare application, one HTTP hop between them.

Reported: requests/s and CPU µs per request of everything that serves the
request (both processes for ``serve+app``), and the ratios to ``app``.
Results go to ``bench/results/protect.{json,md}``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey

sys.path.insert(0, str(Path(__file__).parent))

from anchors import Server, cpu_seconds, free_port, missing_tools, start_upstream
from gateway_bench import (
    REQUEST_CONTEXT,
    Fixture,
    gateway_settings,
    preflight,
    start_python,
    wrk,
)

HERE = Path(__file__).parent
PATH = "/fhir/Patient/pat-1"


def start_app(name: str, factory: str, root: Path) -> Server:
    """A bench_servers factory under uvicorn (its own protocol, as an
    application's server runs it); the factories read the KAITIAKI_BENCH_*
    variables set in :func:`run`."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        f"bench_servers:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return start_python(name, argv, port, root)


def settings_file(fixture: Fixture, upstream: Server, name: str, port: int) -> Path:
    config = fixture.root / f"{name}.toml"
    config.write_text(gateway_settings(fixture, upstream, port, 1))
    config.chmod(0o600)  # the gateway refuses settings others can read
    return config


class Layer:
    def __init__(self, name: str, front: Server, behind: list[Server]) -> None:
        self.name, self.front, self.behind = name, front, behind

    def pids(self) -> list[int]:
        return [pid for server in (self.front, *self.behind) for pid in server.pids()]


def run(args: argparse.Namespace) -> int:
    missing = missing_tools()
    if missing:
        print(f"missing Debian packages: {' '.join(missing)} (bench/run installs them)")
        return 2
    with tempfile.TemporaryDirectory(prefix="kaitiaki-protect-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        fixture = Fixture(root, ECKey.generate_key("P-256"))
        servers: list[Server] = []
        try:
            # nginx serves the stand-in issuer's discovery and JWKS.
            documents = fixture.write()
            patient = root / "docs" / "patient.json"  # written by fixture.write
            os.environ["KAITIAKI_BENCH_PATIENT"] = str(patient)
            upstream = start_upstream(root / "issuer", documents)
            servers.append(upstream)
            fixture.publish(upstream.port)
            bare = start_app("app", "patient_app", root)
            servers.append(bare)
            # The settings' port is not used: uvicorn listens where told.
            config = settings_file(fixture, upstream, "protect", free_port())
            os.environ["KAITIAKI_BENCH_CONFIG"] = str(config)
            protected = start_app("app+protect", "protected_app", root)
            servers.append(protected)
            behind = start_app("app-behind-serve", "patient_app", root)
            servers.append(behind)
            serve_port = free_port()
            serve_config = root / "serve.toml"
            text = gateway_settings(fixture, upstream, serve_port, 1).replace(
                f'upstream = "http://127.0.0.1:{upstream.port}/fhir"',
                f'upstream = "http://127.0.0.1:{behind.port}/fhir"',
            )
            serve_config.write_text(text)
            serve_config.chmod(0o600)
            argv = [sys.executable, "-m", "kaitiaki", "serve", "--config"]
            serve = start_python(
                "serve+app", [*argv, str(serve_config)], serve_port, root
            )
            servers.append(serve)
            layers = [
                Layer("app", bare, []),
                Layer("app+protect", protected, []),
                Layer("serve+app", serve, [behind]),
            ]
            return report(args, fixture, layers)
        finally:
            for server in reversed(servers):
                server.stop()


def report(args: argparse.Namespace, fixture: Fixture, layers: list[Layer]) -> int:
    headers = {
        "Authorization": f"Bearer {fixture.token()}",
        "Accept": "application/fhir+json",
        "Request-Context": base64.b64encode(
            json.dumps(REQUEST_CONTEXT).encode()
        ).decode(),
    }
    for layer in layers:
        preflight(layer.front, PATH, headers)
    samples: dict[str, list[dict[str, float]]] = {x.name: [] for x in layers}
    for _ in range(args.rounds):
        for layer in layers:
            before = cpu_seconds(layer.pids())
            total, rate, latency, bad = wrk(
                f"http://127.0.0.1:{layer.front.port}{PATH}",
                headers,
                seconds=args.duration,
                connections=args.connections,
            )
            used = cpu_seconds(layer.pids()) - before
            samples[layer.name].append(
                {
                    "requests_per_second": rate,
                    "cpu_us_per_request": used / max(total, 1) * 1e6,
                    "p99_ms": latency.get("p99", 0.0),
                    "non_2xx": bad,
                }
            )
    summary: dict[str, dict[str, Any]] = {}
    for name, runs in samples.items():
        summary[name] = {
            key: statistics.median(run[key] for run in runs)
            for key in ("requests_per_second", "cpu_us_per_request", "p99_ms")
        }
        summary[name]["non_2xx"] = sum(run["non_2xx"] for run in runs)
    anchor = summary["app"]
    lines = [
        f"{args.rounds} interleaved rounds of {args.duration} s, "
        f"{args.connections} connections, wrk on the same machine.",
        "",
        "| layer | req/s | CPU µs/req | p99 ms | req/s vs app | CPU vs app | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        lines.append(
            f"| {name} | {row['requests_per_second']:.0f} | "
            f"{row['cpu_us_per_request']:.0f} | {row['p99_ms']:.2f} | "
            f"{row['requests_per_second'] / anchor['requests_per_second']:.2f} | "
            f"{row['cpu_us_per_request'] / anchor['cpu_us_per_request']:.2f} | "
            f"{row['non_2xx']} |"
        )
    table = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "protect.json").write_text(
        json.dumps({"summary": summary, "samples": samples}, indent=2) + "\n"
    )
    (out / "protect.md").write_text(table)
    print(table)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 120:
        parser.error("rounds 1 to 20, duration 1 to 120 s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
