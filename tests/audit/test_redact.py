"""Redaction: keyed hashes for patients, masks for secrets, escaped text."""

from __future__ import annotations

import io
import logging

import pytest

from kaitiaki.audit import Pseudonymiser, RedactingFilter, redact_text
from kaitiaki.audit.redact import patient_identifier, pseudonymous, redact_query

HASHER = Pseudonymiser(b"k" * 32)


@pytest.mark.parametrize(
    ("resource_type", "resource_id", "query", "expected"),
    [
        ("Patient", "ZZZ0016", (), "ZZZ0016"),
        ("Observation", None, (("patient", "ZZZ0016"),), "ZZZ0016"),
        ("Observation", None, (("subject", "Patient/ZZZ0016"),), "Patient/ZZZ0016"),
        (
            "Patient",
            None,
            (("identifier", "https://x/nhi-id|ZZZ0016"),),
            "https://x/nhi-id|ZZZ0016",
        ),
        ("Observation", None, (("code", "abc"), ("note", "zzz0016")), "ZZZ0016"),
        ("Observation", None, (("subject", "Group/7"),), None),
        ("Observation", "obs-1", (("code", "1234-5"),), None),
    ],
)
def test_patient_identifier_is_found(
    resource_type: str,
    resource_id: str | None,
    query: tuple[tuple[str, str], ...],
    expected: str | None,
) -> None:
    assert patient_identifier(resource_type, resource_id, query) == expected


@pytest.mark.parametrize(
    "form",
    [
        "ZZZ0016",
        "zzz0016",
        "Patient/ZZZ0016",
        "https://api/fhir/Patient/ZZZ0016",
        "https://standards.digital.health.nz/ns/nhi-id|ZZZ0016",
    ],
)
def test_patient_hash_correlates_every_form(form: str) -> None:
    assert HASHER.patient(form) == HASHER.patient("ZZZ0016")
    assert "ZZZ0016" not in HASHER.patient(form)


def test_patient_hash_depends_on_the_key() -> None:
    assert Pseudonymiser(b"a" * 32).patient("ZZZ0016") != HASHER.patient("ZZZ0016")
    with pytest.raises(ValueError):
        Pseudonymiser(b"short")
    assert "k" * 32 not in repr(HASHER)


def test_redact_query_keeps_names_and_hashes_values() -> None:
    text = redact_query(
        (("family", "Smith"), ("birthdate", "1970-01-01"), ("_count", "10")), HASHER
    )
    assert "Smith" not in text and "1970" not in text
    assert text.startswith("family=h:") and text.endswith("&_count=10")


SECRET_LINES = [
    "Authorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
    "cookie=session=CANARY123; other",
    "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl in text",
    "request-context: eyJ1c2VyRnVsbE5hbWUiOiJBcm9oYSJ9",
    "dpop eyJ0eXAiOiJkcG9wK2p3dCJ9CANARY",
    "Basic Q0FOQVJZOnNlY3JldA==",
    "blob Q0FOQVJZQ0FOQVJZQ0FOQVJZQ0FOQVJZQ0FOQVJZQ0FOQVJZ end",
    "patient ZZZ0016 seen",
]


@pytest.mark.parametrize("line", SECRET_LINES)
def test_redact_text_masks_secrets(line: str) -> None:
    out = redact_text(line)
    for secret in ("CANARY", "eyJ", "ZZZ0016", "Q0FO", "Smith"):
        assert secret not in out


def test_redact_text_escapes_control_characters() -> None:
    out = redact_text("a\r\nFAKE 2026 INFO forged\x1b[2J")
    assert "\n" not in out and "\r" not in out and "\x1b" not in out
    assert "\\x0a" in out


def test_redacting_filter_redacts_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(HASHER))
    logger = logging.getLogger("kaitiaki.test.redact")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("token %s for %s", "Bearer CANARYTOKEN", "ZZZ0016")
        try:
            raise ValueError("bad ZZZ0016 Bearer CANARYTOKEN")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)

    text = stream.getvalue()
    assert "CANARY" not in text and "ZZZ0016" not in text
    assert "nhi:" + HASHER.patient("ZZZ0016") in text
    assert "test_redacting_filter_redacts_args_and_tracebacks" in text


def test_pseudonymous_hashes_only_nhi_shaped_values() -> None:
    assert pseudonymous("svc-client", HASHER) == "svc-client"
    assert pseudonymous("Patient/ZZZ0016", HASHER) == "h:" + HASHER.patient("ZZZ0016")
    assert pseudonymous(None, HASHER) is None


def test_audit_text_escapes_controls_and_surrogates_and_nothing_else() -> None:
    from kaitiaki.audit.events import escape

    surrogates = [0xD800, 0xDBFF, 0xDC00, 0xDFFF]
    for code in [*range(0x00, 0x2000), 0x2028, 0xFEFF, 0x1F600, *surrogates]:
        value = f"a{chr(code)}b"
        unsafe = code < 0x20 or 0x7F <= code <= 0x9F or chr(code) == "\\"
        unsafe = unsafe or 0xD800 <= code <= 0xDFFF  # no UTF-8 for these
        assert escape(value) == (f"a\\x{code:02x}b" if unsafe else value), code
        assert escape("x" * 300 + chr(code)) == "x" * 256
