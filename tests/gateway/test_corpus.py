"""The NZ implementation-guide corpus through the whole gateway: every valid
example is accepted as a create body and every search of searches.txt that
names a routed interaction is forwarded; no false positives anywhere on the
way (path rule, query parse, search parameters, identifiers, strict JSON,
FHIR structure)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import GatewayUnderTest, StandIn
from tests.gateway.validation_support import running_gateway, send_raw

CORPUS = Path(__file__).resolve().parents[3] / "shared/data/fhir-nz-examples"
DATA = Path(__file__).resolve().parents[1] / "fhir/data"
EXTRA = tomllib.loads((DATA / "ig-search-parameters.toml").read_text())
NZ_FAILURES = tomllib.loads((DATA / "nz-identifier-failures.toml").read_text())
JSON = "application/fhir+json"
SEARCHES = (CORPUS / "searches.txt").read_text().splitlines()
FILES = sorted(CORPUS.glob("*/*.json"))


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayUnderTest, StandIn]]:
    lines = ", ".join(
        f"{name} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in values)}]"
        for name, values in EXTRA.items()
    )
    extra = f"[validation]\nmax_count = 100\nextra_search_parameters = {{ {lines} }}\n"
    with running_gateway(Path(tmp_path_factory.mktemp("corpus")), extra) as pair:
        yield pair


def _unrouted(target: str) -> bool:
    # Not routed today (docs/architecture.md): compartment searches
    # (/Patient/id/Type). System-level search and $operations are routed.
    path = target.split("?", 1)[0]
    segments = path.split("/")[2:]
    return len(segments) == 3 and segments[2][:1].isupper()


def test_every_corpus_search_passes_the_gateway(
    pair: tuple[GatewayUnderTest, StandIn],
) -> None:
    gw, standin = pair
    # The corpus's searches include Patient/$summary, an operation of its own.
    summary = "http://hl7.org/fhir/OperationDefinition/Patient-summary"
    token = standin.token({"scope": f"system/*.rs {summary}"})
    refused = []
    routed = 0
    for line in SEARCHES:
        target = line.split()[1]
        headers = {"Accept": JSON, "Authorization": f"Bearer {token}"}
        status, _ = send_raw(gw, "GET", target, headers)
        expected = 404 if _unrouted(target) else 200
        routed += expected == 200
        if status != expected:
            refused.append((target, status))
    assert refused == []
    assert routed > 230
    assert len(gw.recorder.requests) == routed


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_example_is_accepted_as_a_body(
    pair: tuple[GatewayUnderTest, StandIn], path: Path
) -> None:
    gw, standin = pair
    gw.recorder.requests.clear()
    raw = path.read_bytes()
    resource_type = path.name.split("-", 1)[0]
    token = standin.token({"scope": "system/*.c"})
    response = gw.client.post(
        f"/fhir/{resource_type}",
        headers={
            "Accept": JSON,
            "Content-Type": JSON,
            "Authorization": f"Bearer {token}",
        },
        content=raw,
    )
    name = f"{path.parent.name}/{path.name}"
    if name in NZ_FAILURES:
        assert response.status_code == 400
        assert response.json()["issue"][0]["code"] == "value"
        assert gw.recorder.requests == []
    else:
        assert response.status_code == 201, response.text
        assert gw.recorder.requests[0]["body"] == raw
