"""Kaitiaki side by side with nginx and nginx + ModSecurity/CRS, in one run.

Run: ``make bench`` (or ``bench/run``), which installs what this needs and
calls ``python bench/gateway_bench.py``. Every server is started here on a
loopback port and stopped by process id; every load run is bounded in time.

Layers, each in front of the same upstream (nginx serving a 1 KB Patient):

1. ``upstream``: the upstream alone;
2. ``nginx-proxy``: nginx ``proxy_pass``, the practical limit of a proxy here;
3. ``nginx-modsecurity``: nginx + ModSecurity v3 + OWASP CRS PL1 (the anchor),
   one nginx worker; ``nginx-modsecurity-2w``: two, the anchor of the
   2-worker layers;
4. ``kaitiaki-passthrough``: Kaitiaki's hop with every control off;
   ``kaitiaki-full``/``kaitiaki-full-2w``: the whole pipeline, 1 and 2 workers;
5. ``kaitiaki-scaleout``: the whole pipeline with Redis limits and PostgreSQL
   audit, when the settings support them (``--scaleout``).

Rounds are interleaved (every layer once per round, in turn) so that drift
on a shared machine hits every layer alike. Reported: requests/s, p50/p99
latency, CPU µs per request of the layer under test, and ratios against (2)
and (3). Results go to ``bench/results/`` as JSON, Markdown and a PNG chart.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

sys.path.insert(0, str(Path(__file__).parent))

from anchors import (
    Server,
    cpu_seconds,
    free_port,
    missing_tools,
    rss_bytes,
    start_modsecurity,
    start_proxy,
    start_upstream,
    wait_for_port,
)

HERE = Path(__file__).parent
ROOT = HERE.parent
AUDIENCE = "https://bench.kaitiaki.invalid/fhir"
CLIENT = "bench-client"
NHI_SYSTEM = "https://standards.digital.health.nz/ns/nhi-id"
REQUEST_CONTEXT = {
    "userIdentifier": CLIENT,
    "userRole": "110150",
    "purposeOfUse": ["RECORDMGT"],
    "userFullName": "Benchmark Sync Job",
    "orgIdentifier": "GQX042-A",
    "facilityIdentifier": "FQX042-E",
}


def patient_document() -> bytes:
    """A synthetic FHIR Patient of about 1 KB (test-range NHI)."""
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "pat-1",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-01T00:00:00Z"},
        "identifier": [{"use": "official", "system": NHI_SYSTEM, "value": "ZZZ0016"}],
        "active": True,
        "name": [{"use": "official", "family": "Test-Patient", "given": ["Aroha"]}],
        "telecom": [{"system": "phone", "value": "021 000 0000", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1984-03-02",
        "address": [
            {
                "use": "home",
                "line": ["1 Example Street"],
                "city": "Wellington",
                "postalCode": "6011",
                "country": "NZ",
            }
        ],
    }
    text = json.dumps(patient, separators=(",", ":"))
    pad = max(0, 1024 - len(text) - 40)
    patient["text"] = {
        "status": "generated",
        "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "x" * pad + "</div>",
    }
    return json.dumps(patient, separators=(",", ":")).encode()


@dataclass
class Fixture:
    """The upstream's documents and the stand-in issuer the gateway trusts."""

    root: Path
    key: ECKey
    issuer: str = ""

    def write(self) -> dict[str, tuple[str, Path]]:
        docs = self.root / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        docs.chmod(0o755)
        (docs / "patient.json").write_bytes(patient_document())
        public = self.key.as_dict(private=False)
        public.update(kid="bench-1", use="sig", alg="ES256")
        (docs / "jwks.json").write_text(json.dumps({"keys": [public]}))
        return {
            "/fhir/Patient/pat-1": ("application/fhir+json", docs / "patient.json"),
            "/issuer/jwks": ("application/json", docs / "jwks.json"),
            "/issuer/.well-known/openid-configuration": (
                "application/json",
                docs / "openid-configuration.json",
            ),
        }

    def publish(self, upstream_port: int) -> None:
        self.issuer = f"http://127.0.0.1:{upstream_port}/issuer"
        metadata = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks"}
        path = self.root / "docs" / "openid-configuration.json"
        path.write_text(json.dumps(metadata))

    def token(self, lifetime: int = 3000) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": CLIENT,
            "client_id": CLIENT,
            "scope": "system/*.rs",
            "jti": base64.urlsafe_b64encode(os.urandom(12)).decode(),
            "iat": now,
            "exp": now + lifetime,
        }
        header = {"alg": "ES256", "kid": "bench-1", "typ": "at+jwt"}
        return jwt.encode(header, claims, self.key)


_DEFAULT_LIMITS = """
[limits]
address_rate = "100000000/minute"
default_rate = "100000000/minute"
"""

_DEFAULT_AUDIT = """
[audit]
sink = "sqlite"
path = "{root}/audit-{port}.sqlite"
durability = "batched"
"""


def gateway_settings(
    fixture: Fixture, upstream: Server, port: int, workers: int, extra: str = ""
) -> str:
    return f"""
[gateway]
host = "127.0.0.1"
port = {port}
public_url = "https://bench.kaitiaki.invalid"
fhir_base = "/fhir"
upstream = "http://127.0.0.1:{upstream.port}/fhir"
instance = "bench-{port}"
workers = {workers}

[auth]
issuer = "{fixture.issuer}"
audience = "{AUDIENCE}"
algorithms = ["ES256"]

{"" if "[limits]" in extra else _DEFAULT_LIMITS}
{extra or _DEFAULT_AUDIT.format(root=fixture.root, port=port)}"""


def start_python(name: str, argv: list[str], port: int, root: Path) -> Server:
    env = {**os.environ, "PYTHONPATH": str(HERE), "KAITIAKI_LOG_LEVEL": "WARNING"}
    log = (root / f"{name}.log").open("wb")
    process = subprocess.Popen(argv, env=env, cwd=root, stdout=log, stderr=log)
    wait_for_port(port, timeout=60)
    return Server(name, port, process)


def start_kaitiaki(
    name: str, fixture: Fixture, upstream: Server, workers: int, extra: str = ""
) -> Server:
    port = free_port()
    config = fixture.root / f"{name}.toml"
    config.write_text(gateway_settings(fixture, upstream, port, workers, extra))
    config.chmod(0o600)  # the gateway refuses settings others can read
    argv = [sys.executable, "-m", "kaitiaki", "serve", "--config", str(config)]
    return start_python(name, argv, port, fixture.root)


def start_passthrough(fixture: Fixture, upstream: Server) -> Server:
    port = free_port()
    argv = [
        sys.executable,
        str(HERE / "passthrough.py"),
        str(port),
        f"http://127.0.0.1:{upstream.port}/fhir",
    ]
    return start_python("kaitiaki-passthrough", argv, port, fixture.root)


_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class Sample:
    layer: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    requests: int
    non_2xx: int


def wrk(
    url: str,
    headers: dict[str, str],
    *,
    seconds: int,
    connections: int,
    script: Path | None = None,
) -> tuple[int, float, dict[str, float], int]:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    latency = {f"p{m[0]}": float(m[1]) * _UNITS[m[2]] for m in _LATENCY.findall(out)}
    return total, rate, latency, int(bad.group(1)) if bad else 0


def measure(
    server: Server,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    measured: Server | None = None,
) -> Sample:
    layer = measured or server
    before = cpu_seconds(layer.pids())
    total, rate, latency, bad = wrk(
        url, headers, seconds=args.duration, connections=args.connections
    )
    used = cpu_seconds(layer.pids()) - before
    return Sample(
        server.name,
        rate,
        latency.get("p50", 0.0),
        latency.get("p99", 0.0),
        used / max(total, 1) * 1e6,
        total,
        bad,
    )


def preflight(server: Server, path: str, headers: dict[str, str]) -> None:
    """Each layer must answer 200 before it is measured: errors are cheap."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    if status != 200:
        raise SystemExit(f"{server.name} answered {status}, not 200: not measured")


def summarise(samples: list[Sample]) -> dict[str, dict[str, float]]:
    by_layer: dict[str, list[Sample]] = {}
    for sample in samples:
        by_layer.setdefault(sample.layer, []).append(sample)
    summary = {}
    for layer, runs in by_layer.items():
        summary[layer] = {
            "requests_per_second": statistics.median(
                s.requests_per_second for s in runs
            ),
            "p50_ms": statistics.median(s.p50_ms for s in runs),
            "p99_ms": statistics.median(s.p99_ms for s in runs),
            "cpu_us_per_request": statistics.median(s.cpu_us_per_request for s in runs),
            "non_2xx": sum(s.non_2xx for s in runs),
            "rounds": len(runs),
        }
    for values in summary.values():
        for anchor in (
            "nginx-proxy",
            "nginx-modsecurity",
            "nginx-modsecurity-2w",
            "kaitiaki-passthrough",
        ):
            if anchor in summary:
                values[f"rps_vs_{anchor}"] = round(
                    values["requests_per_second"]
                    / summary[anchor]["requests_per_second"],
                    3,
                )
                values[f"p99_vs_{anchor}"] = round(
                    values["p99_ms"] / max(summary[anchor]["p99_ms"], 1e-9), 3
                )
    return summary


def soak(
    server: Server,
    url: str,
    headers: dict[str, str],
    peak: float,
    args: argparse.Namespace,
    root: Path,
) -> dict[str, Any]:
    """Half of peak load for ``--soak`` seconds, sampling the gateway's RSS."""
    connections = 16
    delay_ms = max(1, int(connections * 1000 / max(peak * 0.5, 1)))
    script = root / "paced.lua"
    script.write_text(f"function delay() return {delay_ms} end\n")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{args.soak}s", "-s", str(script)]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    load = subprocess.Popen([*argv, url], stdout=subprocess.PIPE, text=True)
    samples = []
    deadline = time.monotonic() + args.soak
    while time.monotonic() < deadline and load.poll() is None:
        samples.append(rss_bytes(server.pids()))
        time.sleep(min(5.0, max(0.5, args.soak / 60)))
    out, _ = load.communicate(timeout=args.soak + 30)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    settled = samples[len(samples) // 10 :] or samples
    low, high = min(settled), max(settled)
    return {
        "seconds": args.soak,
        "target_rps": round(peak * 0.5, 1),
        "achieved_rps": float(rate.group(1)) if rate else 0.0,
        "rss_first_mib": round(settled[0] / 2**20, 1),
        "rss_last_mib": round(settled[-1] / 2**20, 1),
        "rss_min_mib": round(low / 2**20, 1),
        "rss_max_mib": round(high / 2**20, 1),
        "rss_spread": round((high - low) / low, 3),
        "samples": len(samples),
    }


# How wrk spaces each connection's requests at equal load. "fixed": the same
# think time after every reply, so the 16 connections stay in step and their
# requests come in bursts of 16 (a fleet of clients on one timer);
# "random": exponential think times, so requests come independently
# (Poisson-like arrivals, the usual model of many unrelated clients).
PACINGS = {
    "fixed": "function delay() return {mean} end\n",
    "random": (
        "function delay() return math.floor(-{mean} * math.log(1 - math.random()))"
        " end\n"
    ),
}


def equal_load(
    layers: list[Server],
    path: str,
    headers: dict[str, str],
    peak: float,
    args: argparse.Namespace,
    root: Path,
) -> dict[str, Any]:
    """Latency of the pass-through and the full pipeline at one offered rate,
    half the full pipeline's peak: what the controls add at the same load,
    rather than at each layer's own saturation. Once per pacing."""
    connections = 16
    rate = peak * 0.5
    mean = max(1, int(connections * 1000 / rate))
    chosen = [x for x in layers if x.name in ("kaitiaki-passthrough", "kaitiaki-full")]
    found: dict[str, Any] = {"target_rps": round(rate, 1)}
    for pacing, template in PACINGS.items():
        script = root / f"equal-{pacing}.lua"
        script.write_text(template.format(mean=mean))
        runs: dict[str, list[tuple[float, dict[str, float]]]] = {}
        for _ in range(args.rounds):
            for layer in chosen:
                _, achieved, latency, _ = wrk(
                    f"http://127.0.0.1:{layer.port}{path}",
                    headers,
                    seconds=args.duration,
                    connections=connections,
                    script=script,
                )
                runs.setdefault(layer.name, []).append((achieved, latency))
        paced: dict[str, Any] = {}
        for name, samples in runs.items():
            paced[name] = {
                "achieved_rps": statistics.median(s[0] for s in samples),
                "p50_ms": statistics.median(s[1].get("p50", 0.0) for s in samples),
                "p99_ms": statistics.median(s[1].get("p99", 0.0) for s in samples),
            }
        if len(runs) == 2:
            paced["p99_ratio"] = round(
                paced["kaitiaki-full"]["p99_ms"]
                / max(paced["kaitiaki-passthrough"]["p99_ms"], 1e-9),
                2,
            )
        found[pacing] = paced
    return found


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        ),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": time.strftime("%Y-%m-%d"),
    }


def _same_workers(layer: str) -> str:
    """The ModSecurity anchor with as many worker processes as ``layer``."""
    two = layer.endswith("-2w") or layer == "kaitiaki-scaleout"
    return "rps_vs_nginx-modsecurity" + ("-2w" if two else "")


def markdown(summary: dict[str, dict[str, float]], meta: dict[str, Any]) -> str:
    lines = [
        f"Machine: {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
        f"{meta['rounds']} interleaved rounds of {meta['duration']} s, "
        f"{meta['connections']} connections, wrk on the same machine.",
        "",
        "| layer | req/s | p50 ms | p99 ms | CPU µs/req | vs nginx proxy "
        "| vs ModSecurity, same workers | vs pass-through | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layer, v in summary.items():
        lines.append(
            f"| {layer} | {v['requests_per_second']:.0f} | {v['p50_ms']:.2f} "
            f"| {v['p99_ms']:.2f} | {v['cpu_us_per_request']:.0f} "
            f"| {v.get('rps_vs_nginx-proxy', 0):.2f} "
            f"| {v.get(_same_workers(layer), 0):.2f} "
            f"| {v.get('rps_vs_kaitiaki-passthrough', 0):.2f} | {v['non_2xx']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def chart(summary: dict[str, dict[str, float]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    layers = list(summary)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(
        layers, [summary[x]["requests_per_second"] for x in layers], color="#2a6f97"
    )
    left.set_xscale("log")  # nginx is 30x the rest: a linear axis hides them
    left.set_xlabel("requests per second, log scale (higher is better)")
    right.barh(
        layers, [summary[x]["cpu_us_per_request"] for x in layers], color="#b5542c"
    )
    right.set_xlabel("CPU µs per request of the layer (lower is better)")
    right.set_yticklabels([])
    fig.suptitle("Kaitiaki beside nginx and nginx + ModSecurity/CRS PL1 (same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def targets(
    root: Path, fixture: Fixture, args: argparse.Namespace
) -> tuple[Server, list[Server]]:
    upstream = start_upstream(root / "upstream", fixture.write())
    fixture.publish(upstream.port)
    layers = [
        start_proxy(root / "proxy", upstream),
        start_modsecurity(root / "modsecurity", upstream),
        # The anchor for the 2-worker layers: as many nginx workers.
        start_modsecurity(
            root / "modsecurity-2w", upstream, workers=2, name="nginx-modsecurity-2w"
        ),
        start_passthrough(fixture, upstream),
        start_kaitiaki("kaitiaki-full", fixture, upstream, 1, args.full_settings),
        start_kaitiaki("kaitiaki-full-2w", fixture, upstream, 2, args.full_settings),
    ]
    if args.scaleout:
        layers.append(
            start_kaitiaki(
                "kaitiaki-scaleout",
                fixture,
                upstream,
                2,
                Path(args.scaleout).read_text(),
            )
        )
    return upstream, layers


def run(args: argparse.Namespace) -> int:
    missing = missing_tools()
    if missing:
        print(f"missing Debian packages: {' '.join(missing)} (bench/run installs them)")
        return 2
    with tempfile.TemporaryDirectory(prefix="kaitiaki-bench-") as tmp:
        root = Path(tmp)
        # nginx workers run unprivileged: the synthetic documents must be
        # readable by them.
        root.chmod(0o755)
        fixture = Fixture(root, ECKey.generate_key("P-256"))
        servers: list[Server] = []
        try:
            upstream, layers = targets(root, fixture, args)
            servers = [upstream, *layers]
            return report(args, root, fixture, upstream, layers)
        finally:
            for server in reversed(servers):
                server.stop()


def report(
    args: argparse.Namespace,
    root: Path,
    fixture: Fixture,
    upstream: Server,
    layers: list[Server],
) -> int:
    headers = {
        "Authorization": f"Bearer {fixture.token()}",
        "Accept": "application/fhir+json",
        "Request-Context": base64.b64encode(
            json.dumps(REQUEST_CONTEXT).encode()
        ).decode(),
    }
    path = "/fhir/Patient/pat-1"
    for server in [upstream, *layers]:
        preflight(server, path, headers)
    samples: list[Sample] = []
    for round_number in range(args.rounds):
        samples.append(
            measure(upstream, f"http://127.0.0.1:{upstream.port}{path}", headers, args)
        )
        for layer in layers:
            samples.append(
                measure(layer, f"http://127.0.0.1:{layer.port}{path}", headers, args)
            )
        print(f"round {round_number + 1}/{args.rounds} done", flush=True)
    summary = summarise(samples)
    meta: dict[str, Any] = {
        "machine": machine(),
        "rounds": args.rounds,
        "duration": args.duration,
        "connections": args.connections,
    }
    meta["equal_load"] = equal_load(
        layers,
        path,
        headers,
        summary["kaitiaki-full"]["requests_per_second"],
        args,
        root,
    )
    if args.soak:
        full = next(x for x in layers if x.name == "kaitiaki-full")
        peak = summary["kaitiaki-full"]["requests_per_second"]
        meta["soak"] = soak(
            full, f"http://127.0.0.1:{full.port}{path}", headers, peak, args, root
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"meta": meta, "summary": summary, "samples": [asdict(s) for s in samples]}
    (out / "gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(summary, meta)
    same = meta["equal_load"]
    for pacing in PACINGS:
        paced = same.get(pacing, {})
        if "p99_ratio" not in paced:
            continue
        full, hop = paced["kaitiaki-full"], paced["kaitiaki-passthrough"]
        table += (
            f"\nAt equal load, {pacing} pacing ({same['target_rps']:.0f} req/s "
            f"offered, 16 connections): pass-through {hop['achieved_rps']:.0f} "
            f"req/s, p50 {hop['p50_ms']:.2f} ms, p99 {hop['p99_ms']:.2f} ms; full "
            f"pipeline {full['achieved_rps']:.0f} req/s, p50 {full['p50_ms']:.2f} "
            f"ms, p99 {full['p99_ms']:.2f} ms: {paced['p99_ratio']:.2f}x.\n"
        )
    if "soak" in meta:
        s = meta["soak"]
        table += (
            f"\nSoak: {s['seconds']} s at {s['achieved_rps']:.0f} req/s "
            f"(target {s['target_rps']:.0f}): RSS {s['rss_min_mib']} to "
            f"{s['rss_max_mib']} MiB, spread {s['rss_spread'] * 100:.1f}%.\n"
        )
    (out / "gateway.md").write_text(table)
    drew = chart(summary, out / "gateway.png")
    print(table + ("" if drew else "(matplotlib missing: no chart)\n"))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--soak", type=int, default=0, help="soak seconds (600 = 10 min)"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument(
        "--full-settings",
        default="",
        help="TOML appended to the full-pipeline settings",
    )
    parser.add_argument(
        "--scaleout",
        default="",
        help="TOML file appended for the Redis + PostgreSQL layer "
        "(bench/scaleout.toml); its [limits] replaces the default one",
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20 or not 1 <= args.duration <= 120 or args.soak > 3600:
        parser.error("rounds 1 to 20, duration 1 to 120 s, soak at most 3600 s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
