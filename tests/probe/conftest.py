"""The demo stack in this process (development issuer, reference FHIR API),
and a gateway per test, bare (hardened) or behind one weakness."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import ThreadServer, free_port
from tests.probe.weak import Weak

from kaitiaki.gateway.app import Gateway
from kaitiaki.issuer import create_app as create_issuer
from kaitiaki.issuer.state import load_state
from kaitiaki.probe import Profile, Report, demo_profile, run_probe
from kaitiaki.refapi import create_app as create_refapi
from kaitiaki.settings import Settings, parse_settings

AUDIENCE = "https://kaitiaki.test/fhir"
DEMO_TOML = Path(__file__).parents[2] / "src/kaitiaki/demo.toml"


def stack_settings(root: Path, issuer_port: int, refapi_port: int) -> Settings:
    text = DEMO_TOML.read_text()
    text = text.replace("http://127.0.0.1:8080/fhir", AUDIENCE)
    text = text.replace("8090", str(issuer_port)).replace("8081", str(refapi_port))
    text = text.replace('"var/', f'"{root}/var/').replace(
        "sqlite:///var/", f"sqlite:///{root}/var/"
    )
    text = text.replace(
        "[gateway]\n", '[gateway]\npublic_url = "https://kaitiaki.test"\n', 1
    )
    text = text.replace('demo-system = "600/minute"', 'demo-system = "200/minute"')
    (root / "kaitiaki.toml").write_text(text)
    (root / "kaitiaki.toml").chmod(0o600)  # the gateway refuses looser settings
    return parse_settings(text, source="probe test stack")


@dataclass
class Stack:
    root: Path
    settings: Settings
    kid: str
    jwks: dict[str, Any]

    @property
    def issuer(self) -> str:
        return self.settings.auth.issuer

    def profile(self, **changes: Any) -> Profile:
        """The demo profile, with sections replaced by ``changes``."""
        profile = demo_profile(self.settings)
        data = profile.model_dump()
        for name, value in changes.items():
            if isinstance(value, dict) and isinstance(data.get(name), dict):
                data[name] = {**data[name], **value}
            else:
                data[name] = value
        return Profile.model_validate(data)

    @contextmanager
    def gateway(
        self, weakness: str | None = None, port: int | None = None, **weak: Any
    ) -> Iterator[str]:
        """A fresh gateway (fresh rate limits) behind ``weakness``; yields the
        FHIR base URL."""
        port = port or free_port()
        # The public URL is the one the probe calls, so that DPoP proofs' htu
        # (checked against it) can match.
        public = self.settings.gateway.model_copy(
            update={"public_url": f"http://127.0.0.1:{port}"}
        )
        app = Weak(
            Gateway(self.settings.model_copy(update={"gateway": public})),
            weakness,
            issuer=weak.pop("issuer", self.issuer),
            audience=AUDIENCE,
            kid=self.kid,
            **weak,
        )
        with ThreadServer(app, port) as server:
            yield f"{server.url}/fhir"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("probe-stack")
    issuer_port, refapi_port = free_port(), free_port()
    settings = stack_settings(root, issuer_port, refapi_port)
    assert settings.dev_issuer is not None and settings.refapi is not None
    issuer_app = create_issuer(settings.dev_issuer)
    jwks = load_state(settings.dev_issuer).public_jwks
    with (
        ThreadServer(issuer_app, issuer_port),
        ThreadServer(create_refapi(settings.refapi), refapi_port),
    ):
        yield Stack(root, settings, jwks["keys"][0]["kid"], jwks)


ProbeRun = Callable[..., Report]


@pytest.fixture
def probe(stack: Stack) -> ProbeRun:
    """Run checks against a gateway with ``weakness``; returns the report."""

    def run(
        weakness: str | None,
        only: tuple[str, ...],
        profile: Profile | None = None,
        **weak: Any,
    ) -> Report:
        gateway: AbstractContextManager[str] = stack.gateway(weakness, **weak)
        with gateway as base:
            return run_probe(base, profile or stack.profile(), only=only)

    return run
