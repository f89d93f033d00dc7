"""Kaitiaki's traffic filter beside nginx + ModSecurity v3 + OWASP CRS (PL1).

Run: ``.venv/bin/python bench/waf_bench.py [--seconds 8] [--write]``. Needs the
Debian packages nginx, libnginx-mod-http-modsecurity, modsecurity-crs (and
wrk for the load loop); they are installed with apt-get when missing. Starts,
all on loopback ports in a temporary folder and stopped by process id:

* an nginx serving a fixed FHIR Bundle: the one upstream both gateways use;
* nginx + ModSecurity (``SecRuleEngine On``, CRS at paranoia level 1,
  blocking anomaly mode) proxying to it;
* a stand-in issuer, and the Kaitiaki gateway (`kaitiaki serve`, two workers) proxying
  to the same upstream with its default settings.

Then replays the CRS regression corpus (detection per category) and the FHIR
benign corpus (false positives) against both, and drives both with the same
bounded wrk load (requests/s and CPU µs per request of the gateway processes).
``--write`` replaces the WAF section of docs/benchmarks.md with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey
from waf_corpus import Case, Wire, crs_cases, fhir_requests, for_kaitiaki
from waf_report import render, write_section

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PACKAGES = ("nginx", "libnginx-mod-http-modsecurity", "modsecurity-crs", "wrk")
MODSEC_MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so"
LOAD_PATH = (
    "/fhir/Patient?identifier=https://standards.digital.health.nz/ns/nhi-id|ZAC5361"
    "&_count=10"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_packages() -> None:
    missing = [p for p in PACKAGES if not _installed(p)]
    if missing:
        print("installing", " ".join(missing))
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def _installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return "install ok installed" in result.stdout


def nginx_conf(tmp: Path, port: int, body: str, upstream: int | None) -> Path:
    name = "modsec" if upstream else "upstream"
    workers = 2 if upstream else 1
    modules = f"load_module {MODSEC_MODULE};\n" if upstream else ""
    if upstream:
        location = (
            "modsecurity on;\n"
            f"    modsecurity_rules_file {tmp / 'modsec.conf'};\n"
            "    location / { proxy_pass http://up; proxy_http_version 1.1;\n"
            '      proxy_set_header Connection ""; }'
        )
        pool = f"upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}"
    else:
        location = (
            f"location / {{ default_type application/fhir+json; return 200 '{body}'; }}"
        )
        pool = ""
    text = f"""{modules}worker_processes {workers};
daemon off;
pid {tmp / name}.pid;
error_log {tmp / name}-error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_max_body_size 2m;
  client_body_temp_path {tmp / name}-body;
  proxy_temp_path {tmp / name}-proxy;
  {pool}
  server {{
    listen 127.0.0.1:{port};
    {location}
  }}
}}
"""
    path = tmp / f"{name}.nginx.conf"
    path.write_text(text)
    return path


def modsec_conf(tmp: Path) -> None:
    # Tuned as an operator fronting FHIR would: the FHIR media type parsed as
    # JSON and allowed, and PUT/DELETE allowed (CRS blocks them by default).
    (tmp / "modsec.conf").write_text(f"""SecRuleEngine On
SecRequestBodyAccess On
SecRequestBodyLimit 2097152
SecRequestBodyNoFilesLimit 1048576
SecRequestBodyLimitAction Reject
SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:application(?:/soap\\+|/)|text/)xml" \\
  "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/(?:fhir\\+)?json" \\
  "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400"
SecResponseBodyAccess Off
SecAuditEngine Off
SecTmpDir {tmp}
SecDataDir {tmp}
Include /etc/modsecurity/crs/crs-setup.conf
SecAction "id:900010,phase:1,nolog,pass,t:none,setvar:tx.enforce_bodyproc_urlencoded=1"
SecAction "id:900200,phase:1,nolog,pass,t:none,\\
  setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
SecAction "id:900220,phase:1,nolog,pass,t:none,\\
  setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| \\
|multipart/form-data| |text/xml| |application/xml| |application/json| \\
|application/fhir+json| |text/plain|'"
Include /usr/share/modsecurity-crs/rules/*.conf
""")


# The NZ implementation guides' own search parameters, as an operator in
# front of such an upstream lists them (tests/fhir/data says where each is from).
IG_SEARCH_PARAMETERS = ROOT / "tests" / "fhir" / "data" / "ig-search-parameters.toml"


def gateway_conf(tmp: Path, port: int, issuer: int, upstream: int) -> Path:
    path = tmp / "kaitiaki.toml"
    path.write_text(f"""
[gateway]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
upstream = "http://127.0.0.1:{upstream}/fhir"
instance = "bench"
workers = 2
# The CRS tests name their host "localhost", as ModSecurity's server accepts.
allowed_hosts = ["localhost", "localhost:{port}", "127.0.0.1", "127.0.0.1:{port}"]
[auth]
issuer = "http://127.0.0.1:{issuer}"
audience = "https://bench/fhir"
algorithms = ["ES256"]
[limits]
address_rate = "100000000/minute"
default_rate = "100000000/minute"
[validation]
check_nz_identifiers = false
[validation.extra_search_parameters]
{IG_SEARCH_PARAMETERS.read_text()}
[authorise]
# The stand-in token is a client-credentials one without a Request-Context:
# what is compared here is the traffic filter, not the grant policy.
client_credentials = "allow"
[audit]
sink = "jsonl"
path = "{tmp / "audit.jsonl"}"
""")
    path.chmod(0o600)  # the gateway refuses settings others can read
    return path


class Processes:
    """Every process the benchmark starts, stopped by its process id."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(args, **kwargs)  # type: ignore[call-overload]
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def send(port: int, wire: Wire) -> int:
    """Send one request on a new connection; the status, or 0 when refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(wire.encode(f"127.0.0.1:{port}"))
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return 0
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def stand_in_token(key: ECKey, issuer: int) -> str:
    now = int(time.time())
    claims = {
        "iss": f"http://127.0.0.1:{issuer}",
        "aud": "https://bench/fhir",
        "sub": "bench",
        "client_id": "bench",
        # Every interaction, and the one operation the searches use.
        "scope": "system/*.cruds "
        "http://hl7.org/fhir/OperationDefinition/Patient-summary",
        "jti": "bench-1",
        "iat": now,
        "exp": now + 3500,
    }
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    return jwt.encode(header, claims, key)


def replay(
    cases: list[Case], ports: dict[str, int], token: str, dump: list[object]
) -> dict[str, object]:
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    not_applicable: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        mapped = for_kaitiaki(case, token)
        kind = "attack" if case.attack else "benign"
        modsec = send(ports["modsec"], case.wire)
        kaitiaki = send(ports["kaitiaki"], mapped.wire)
        dump.append([case.name, kind, mapped.not_applicable, modsec, kaitiaki])
        row = rows[f"{case.category}|{kind}"]
        row["total"] += 1
        row["modsec_blocked"] += modsec != 200
        row["kaitiaki_blocked"] += kaitiaki != 200
        row["kaitiaki_waf"] += kaitiaki == 403
        if mapped.not_applicable:
            row["not_applicable"] += 1
            row["na_modsec_blocked"] += modsec != 200
            row["na_kaitiaki_blocked"] += kaitiaki != 200
            not_applicable[case.category][mapped.not_applicable] += 1
    return {"rows": rows, "not_applicable": not_applicable}


def benign(requests: list[Wire], ports: dict[str, int]) -> dict[str, object]:
    counts: Counter[str] = Counter()
    statuses: dict[str, Counter[int]] = {"modsec": Counter(), "kaitiaki": Counter()}
    for wire in requests:
        counts["total"] += 1
        for name in ("modsec", "kaitiaki"):
            status = send(ports[name], wire)
            statuses[name][status] += 1
            counts[f"{name}_blocked"] += status == 403
    return {"counts": counts, "statuses": statuses}


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for task in _tree(pid):
            try:
                fields = (
                    Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()
                )
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        todo.extend(int(child) for child in children.split())
    return found


def load(port: int, pids: list[int], token: str, seconds: int) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed")
    before, started = cpu_ticks(pids), time.monotonic()
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Accept: application/fhir+json",
            f"http://127.0.0.1:{port}{LOAD_PATH}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    )
    elapsed = time.monotonic() - started
    ticks = cpu_ticks(pids) - before
    requests = _wrk_requests(result.stdout)
    hz = os.sysconf("SC_CLK_TCK")
    return {
        "rps": requests / elapsed,
        "cpu_us": ticks / hz * 1e6 / max(requests, 1),
        "requests": requests,
        "non_2xx": _wrk_non_2xx(result.stdout),
    }


def _wrk_requests(text: str) -> int:
    for line in text.splitlines():
        if "requests in" in line:
            return int(line.split()[0])
    return 0


def _wrk_non_2xx(text: str) -> int:
    for line in text.splitlines():
        if "Non-2xx" in line:
            return int(line.split()[-1])
    return 0


def start_all(tmp: Path, procs: Processes, key: ECKey) -> dict[str, object]:
    ports = {n: free_port() for n in ("upstream", "modsec", "kaitiaki", "issuer")}
    body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0})
    modsec_conf(tmp)
    up = nginx_conf(tmp, ports["upstream"], body, None)
    ms = nginx_conf(tmp, ports["modsec"], body, ports["upstream"])
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    pids = {
        "upstream": procs.start(["nginx", "-c", str(up), "-p", str(tmp)], **quiet).pid,
        "modsec": procs.start(["nginx", "-c", str(ms), "-p", str(tmp)], **quiet).pid,
    }
    key_file = tmp / "issuer.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True)))
    key_file.chmod(0o600)
    script = str(BENCH / "bench_servers.py")
    issuer_args = [
        sys.executable,
        script,
        "issuer",
        str(ports["issuer"]),
        str(key_file),
    ]
    procs.start(issuer_args, **quiet)
    config = gateway_conf(tmp, ports["kaitiaki"], ports["issuer"], ports["upstream"])
    # As operators run it: `kaitiaki serve`, its listener and its workers.
    gateway = procs.start(
        [sys.executable, "-m", "kaitiaki", "serve", "--config", str(config)],
        env={**os.environ, "KAITIAKI_LOG_LEVEL": "WARNING"},
        **quiet,
    )
    pids["kaitiaki"] = gateway.pid
    for port in ports.values():
        wait_port(port)
    return {"ports": ports, "pids": pids}


def run(
    tmp: Path,
    procs: Processes,
    key: ECKey,
    args: argparse.Namespace,
    dump: list[object],
) -> dict[str, object]:
    started = start_all(tmp, procs, key)
    ports: dict[str, int] = started["ports"]  # type: ignore[assignment]
    pids: dict[str, int] = started["pids"]  # type: ignore[assignment]
    token = stand_in_token(key, ports["issuer"])
    time.sleep(1)
    measured = () if args.no_load else ("modsec", "kaitiaki")
    return {
        "crs": replay(crs_cases(), ports, token, dump),
        "fhir": benign(fhir_requests(token), ports),
        "load": {
            name: load(ports[name], [pids[name]], token, args.seconds)
            for name in measured
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="per load run")
    parser.add_argument("--write", action="store_true", help="update the docs")
    parser.add_argument("--dump", help="write every test's statuses to this file")
    parser.add_argument("--no-load", action="store_true", help="skip the load runs")
    args = parser.parse_args()
    ensure_packages()
    key = ECKey.generate_key("P-256", private=True, auto_kid=True)
    procs = Processes()
    dump: list[object] = []
    with tempfile.TemporaryDirectory(prefix="kaitiaki-waf-") as folder:
        try:
            results = run(Path(folder), procs, key, args, dump)
        finally:
            procs.stop()
    if args.dump:
        Path(args.dump).write_text(json.dumps(dump))
    text = render(results)
    print(text)
    if args.write:
        write_section(ROOT / "docs" / "benchmarks.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
