"""Servers the gateway benchmarks measure against, started on loopback.

nginx serves the 1 KB FHIR Patient (the upstream for every layer), nginx
``proxy_pass`` is the practical limit of a proxy on this machine, and nginx +
ModSecurity v3 + the OWASP Core Rule Set at paranoia level 1 is the WAF
anchor. Each server runs from its own folder and is stopped by process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MODSECURITY_MODULE = Path("/usr/lib/nginx/modules/ngx_http_modsecurity_module.so")
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
MODSECURITY_BASE = Path("/etc/nginx/modsecurity.conf")
UNICODE_MAPPING = Path("/etc/nginx/unicode.mapping")
DEBIAN_PACKAGES = ("nginx", "libnginx-mod-http-modsecurity", "modsecurity-crs", "wrk")


def missing_tools() -> list[str]:
    """The Debian packages this benchmark needs that are not installed."""
    missing = []
    if shutil.which("nginx") is None:
        missing.append("nginx")
    if not MODSECURITY_MODULE.exists():
        missing.append("libnginx-mod-http-modsecurity")
    if not CRS_RULES.is_dir():
        missing.append("modsecurity-crs")
    if shutil.which("wrk") is None:
        missing.append("wrk")
    return missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Server:
    """One started server: its port, its process and the folder it runs in."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    def pids(self) -> list[int]:
        """The process and its children (nginx or uvicorn workers)."""
        found = [self.process.pid]
        for pid in _children(self.process.pid):
            found.append(pid)
            found.extend(_children(pid))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(part) for part in path.read_text().split()]
    except OSError:
        return []


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of ``pids`` so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


_NGINX_HEAD = """\
{load}
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 100000;
"""


def _nginx(
    name: str, root: Path, server_block: str, *, workers: int, load: str = ""
) -> Server:
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        _NGINX_HEAD.format(load=load, workers=workers, root=root) + server_block + "}\n"
    )
    port = int(server_block.split("listen 127.0.0.1:")[1].split(";", maxsplit=1)[0])
    process = subprocess.Popen(
        ["nginx", "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(root / "stderr.log").open("wb"),
    )
    wait_for_port(port)
    return Server(name, port, process)


def start_upstream(root: Path, documents: dict[str, tuple[str, Path]]) -> Server:
    """nginx serving fixed documents: ``{url path: (content type, file)}``."""
    port = free_port()
    locations = "".join(
        f"        location = {path} {{ default_type {kind}; alias {file}; }}\n"
        for path, (kind, file) in documents.items()
    )
    block = f"""    server {{
        listen 127.0.0.1:{port};
{locations}    }}
"""
    return _nginx("upstream", root, block, workers=1)


def _proxy_block(port: int, upstream: int, extra: str = "") -> str:
    return f"""    upstream origin {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
{extra}        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"""


def start_proxy(root: Path, upstream: Server, *, workers: int = 1) -> Server:
    """nginx ``proxy_pass`` in front of the upstream, nothing else."""
    port = free_port()
    return _nginx(
        "nginx-proxy", root, _proxy_block(port, upstream.port), workers=workers
    )


def modsecurity_rules(root: Path, paranoia: int = 1) -> Path:
    """ModSecurity in blocking mode with the Debian CRS at ``paranoia``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(UNICODE_MAPPING, root / "unicode.mapping")
    base = MODSECURITY_BASE.read_text().replace(
        "SecRuleEngine DetectionOnly", "SecRuleEngine On"
    )
    (root / "modsecurity.conf").write_text(base)
    rules = root / "main.conf"
    rules.write_text(
        f"Include {root}/modsecurity.conf\n"
        f"SecAuditEngine Off\n"
        f"SecDebugLogLevel 0\n"
        f"Include {CRS_SETUP}\n"
        f'SecAction "id:900000,phase:1,pass,t:none,nolog,'
        f"setvar:tx.blocking_paranoia_level={paranoia},"
        f'setvar:tx.paranoia_level={paranoia}"\n'
        f"Include {CRS_RULES}/*.conf\n"
    )
    return rules


def start_modsecurity(
    root: Path, upstream: Server, *, workers: int = 1, name: str = "nginx-modsecurity"
) -> Server:
    """nginx + ModSecurity v3 + OWASP CRS, paranoia level 1, blocking."""
    port = free_port()
    rules = modsecurity_rules(root / "modsec")
    extra = f"        modsecurity on;\n        modsecurity_rules_file {rules};\n"
    load = f"load_module {MODSECURITY_MODULE};"
    return _nginx(
        name,
        root,
        _proxy_block(port, upstream.port, extra),
        workers=workers,
        load=load,
    )
