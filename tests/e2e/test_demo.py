"""End to end: the real processes on loopback, a token over HTTP, reads and writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from kaitiaki.demo import wait_for_port
from tests.conftest import free_port

pytestmark = pytest.mark.e2e

NHI_SYSTEM = "https://standards.digital.health.nz/ns/nhi-id"


@dataclass
class Demo:
    root: Path
    config: Path
    base: str
    admin_port: int

    def kaitiaki(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "kaitiaki", "--config", str(self.config), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def token(self, client: str = "demo-system") -> str:
        return self.kaitiaki("token", "--client", client).strip()


def _config(gateway: int, issuer: int, refapi: int, admin: int) -> str:
    text = (Path(__file__).parents[2] / "src/kaitiaki/demo.toml").read_text()
    text = text.replace("8080", str(gateway)).replace("8090", str(issuer))
    text = text.replace("8081", str(refapi)).replace("8079", str(admin))
    text = text.replace("9464", str(free_port()))
    return text.replace('demo-system = "600/minute"', 'demo-system = "25/minute"')


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    ports = free_port(), free_port(), free_port(), free_port()
    config = root / "kaitiaki.toml"
    config.write_text(_config(*ports))
    config.chmod(0o600)
    log = (root / "demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kaitiaki", "demo", "--config", str(config)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KAITIAKI_LOG_LEVEL": "WARNING"},
    )
    try:
        assert wait_for_port("127.0.0.1", ports[0], timeout=60), "gateway never came up"
        yield Demo(root, config, f"http://127.0.0.1:{ports[0]}/fhir", ports[3])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    assert process.returncode == 0, (root / "demo.log").read_text()
    for port in ports:
        assert not wait_for_port("127.0.0.1", port, timeout=0.5)


def test_demo_key_files_are_private(demo: Demo) -> None:
    demo.token()
    key = demo.root / "var/clients/demo-system.jwk"
    assert key.stat().st_mode & 0o777 == 0o600


def test_demo_search_returns_seeded_patients(demo: Demo) -> None:
    headers = {
        "Authorization": f"Bearer {demo.token()}",
        "Accept": "application/fhir+json",
    }
    with httpx.Client(timeout=10) as client:
        bundle = client.get(f"{demo.base}/Patient?_count=2", headers=headers).json()
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "searchset"
        assert 1 <= len(bundle["entry"]) <= 2
        # Links name the gateway, never the upstream's own address.
        assert all(e["fullUrl"].startswith(demo.base + "/") for e in bundle["entry"])
        assert bundle["link"][0]["url"].startswith(demo.base + "/")

        nhi = bundle["entry"][0]["resource"]["identifier"][0]["value"]
        found = client.get(
            f"{demo.base}/Patient",
            params={"identifier": f"{NHI_SYSTEM}|{nhi}"},
            headers=headers,
        ).json()
        assert [e["resource"]["identifier"][0]["value"] for e in found["entry"]] == [
            nhi
        ]
        metadata = client.get(f"{demo.base}/metadata")
        assert metadata.json()["resourceType"] == "CapabilityStatement"


def test_demo_writer_creates_and_system_client_may_not(demo: Demo) -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Test-Whānau"}]}
    with httpx.Client(timeout=10) as client:
        created = client.post(
            f"{demo.base}/Patient",
            json=patient,
            headers={
                "Authorization": f"Bearer {demo.token('demo-writer')}",
                "Content-Type": "application/fhir+json",
            },
        )
        assert created.status_code == 201
        assert created.headers["location"].startswith(demo.base + "/Patient/")
        refused = client.post(
            f"{demo.base}/Patient",
            json=patient,
            headers={
                "Authorization": f"Bearer {demo.token()}",
                "Content-Type": "application/fhir+json",
            },
        )
        assert refused.status_code == 403
        anonymous = client.get(f"{demo.base}/Patient")
        assert anonymous.status_code == 401


def test_demo_transaction_and_batch_through_the_gateway(demo: Demo) -> None:
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0b7e",
                "request": {"method": "POST", "url": "Patient"},
                "resource": {"resourceType": "Patient", "name": [{"family": "Tauira"}]},
            },
            {
                "request": {"method": "POST", "url": "Observation"},
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "demo"},
                    "subject": {"reference": "urn:uuid:0b7e"},
                },
            },
        ],
    }
    json_headers = {"Content-Type": "application/fhir+json"}
    with httpx.Client(timeout=10) as client:
        refused = client.post(
            demo.base,
            json=transaction,
            headers={"Authorization": f"Bearer {demo.token()}", **json_headers},
        )
        assert refused.status_code == 403
        writer = {"Authorization": f"Bearer {demo.token('demo-writer')}"}
        done = client.post(
            demo.base, json=transaction, headers={**writer, **json_headers}
        )
        assert done.status_code == 200, done.text
        patient, observation = (entry["resource"] for entry in done.json()["entry"])
        assert observation["subject"]["reference"] == f"Patient/{patient['id']}"

        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"request": {"method": "GET", "url": f"Patient/{patient['id']}"}},
                {
                    "request": {
                        "method": "GET",
                        "url": f"Observation?patient=Patient/{patient['id']}",
                    }
                },
            ],
        }
        read = client.post(demo.base, json=batch, headers={**writer, **json_headers})
        assert read.status_code == 200
        entries = read.json()["entry"]
        assert entries[0]["resource"]["id"] == patient["id"]
        assert entries[1]["resource"]["total"] == 1


def test_demo_dpop_bound_token_from_the_shell(demo: Demo) -> None:
    """The README's DPoP commands: a bound token, then one proof per request."""
    key = str(demo.root / "var/clients/dpop.jwk")
    token = demo.kaitiaki("token", "--dpop-key", key).strip()
    url = f"{demo.base}/Patient"

    def proof() -> str:
        return demo.kaitiaki(
            "dpop-proof", "--key", key, "--url", url, "--token", token
        ).strip()

    accept = {"Accept": "application/fhir+json"}
    with httpx.Client(timeout=10) as client:
        bound = {**accept, "Authorization": f"DPoP {token}", "DPoP": proof()}
        assert client.get(url, params={"_count": 1}, headers=bound).status_code == 200
        replayed = client.get(url, params={"_count": 1}, headers=bound)
        assert replayed.status_code == 401
        as_bearer = {**accept, "Authorization": f"Bearer {token}"}
        assert client.get(url, headers=as_bearer).status_code == 401


def test_demo_throttles_and_audits(demo: Demo) -> None:
    headers = {"Authorization": f"Bearer {demo.token()}"}
    with httpx.Client(timeout=10) as client:
        statuses = [
            client.get(f"{demo.base}/Patient/pat-1", headers=headers).status_code
            for _ in range(30)
        ]
    assert 429 in statuses
    events = [
        json.loads(line)
        for line in demo.kaitiaki("audit", "tail", "--limit", "500").splitlines()
    ]
    assert {event["status"] for event in events} >= {200, 201, 401, 403, 429}
    assert all("Bearer" not in json.dumps(event) for event in events)


def test_demo_admin_plane_on_loopback(demo: Demo) -> None:
    admin = f"http://127.0.0.1:{demo.admin_port}/admin"
    token = demo.kaitiaki(
        "token", "--client", "demo-admin", "--resource", "kaitiaki-admin"
    ).strip()
    with httpx.Client(timeout=10) as client:
        view = client.get(
            f"{admin}/config", headers={"Authorization": f"Bearer {token}"}
        )
        assert view.status_code == 200
        assert view.json()["settings"]["admin"]["host"] == "127.0.0.1"
        ordinary = client.get(
            f"{admin}/config", headers={"Authorization": f"Bearer {demo.token()}"}
        )
        assert ordinary.status_code == 403


def test_demo_reference_data_encrypted_at_rest(demo: Demo) -> None:
    demo.token()
    raw = (demo.root / "var/refapi.sqlite").read_bytes()
    assert b"ZZZ0016" not in raw
    key = demo.root / "var/keys/refapi-data/current.jwk"
    assert key.stat().st_mode & 0o777 == 0o600
