import pytest

from kaitiaki.errors import BadRequest, HeadersTooLarge, UriTooLong
from kaitiaki.request import (
    canonical_path,
    collect_headers,
    correlation_id,
    encode_query,
    parse_query,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/fhir/Patient/p1", "/fhir/Patient/p1"),
        (b"/fhir/Patient/%70%31", "/fhir/Patient/p1"),
        (b"/fhir/Patient/a-b_c~d", "/fhir/Patient/a-b_c~d"),
        (b"/", "/"),
    ],
)
def test_canonical_path_accepts_and_decodes_unreserved(
    raw: bytes, expected: str
) -> None:
    assert canonical_path(raw, max_bytes=4096) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"/fhir/../Patient",
        b"/fhir/./Patient",
        b"/fhir//Patient",
        b"/fhir/Patient/",
        b"/fhir/Patient%2Fp1",
        b"/fhir/Patient%2fp1",
        b"/fhir/Patient%5Cp1",
        b"/fhir/%2e%2e/Patient",
        b"/fhir/%2E/Patient",
        b"/fhir/Patient%3Bx",
        b"/fhir/Patient;x",
        b"/fhir/Patient\\p1",
        b"/fhir/Patient%00",
        b"/fhir/%0d%0a",
        b"/fhir/%1b[2J",
        b"/fhir/%C3%A9",
        b"/fhir/\xc3\xa9",
        b"/fhir/Pat ient",
        b"http://attacker.example/fhir",
        b"*",
        b"/fhir/%zz",
        b"/fhir/%2",
        b"/fhir/%252F",
    ],
)
def test_canonical_path_refuses_by_one_rule(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        canonical_path(raw, max_bytes=4096)


def test_canonical_path_refuses_long_uri() -> None:
    with pytest.raises(UriTooLong):
        canonical_path(b"/" + b"a" * 5000, max_bytes=4096)


def test_parse_query_keeps_order_and_repeats() -> None:
    pairs = parse_query(b"patient=p1&patient=p2&code=a,b&_count=", max_bytes=4096)
    assert pairs == (
        ("patient", "p1"),
        ("patient", "p2"),
        ("code", "a,b"),
        ("_count", ""),
    )
    assert encode_query(pairs) == "patient=p1&patient=p2&code=a,b&_count="


@pytest.mark.parametrize("raw", [b"a=%0d%0a", b"a=%ff", b"=x", b"a=b c", b"a=%00"])
def test_parse_query_refuses_malformed(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_query(raw, max_bytes=4096)


def test_collect_headers_limits_count_and_size() -> None:
    with pytest.raises(HeadersTooLarge):
        collect_headers([(b"x", b"1")] * 65, max_count=64, max_bytes=16384)
    with pytest.raises(HeadersTooLarge):
        collect_headers([(b"x", b"1" * 20000)], max_count=64, max_bytes=16384)


@pytest.mark.parametrize(
    ("values", "kept"),
    [
        (["abc-123"], True),
        (["a" * 65], False),
        (["a b"], False),
        (["a", "b"], False),
        (["x\r\ny"], False),
    ],
)
def test_correlation_id_only_safe_values(values: list[str], kept: bool) -> None:
    result = correlation_id({"x-correlation-id": values})
    assert (result == values[0]) is kept
