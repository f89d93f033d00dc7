"""Request-Context: the catalogue's §2.7 vectors, every invalid kind, spellings."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kaitiaki.errors import InvalidRequestContext
from kaitiaki.nz.request_context import RequestContextReader, parse_request_context
from kaitiaki.settings import RequestContextSettings

HPI_PERSON = "https://standards.digital.health.nz/ns/hpi-person-id"
USER_V1 = {
    "userIdentifier": "clin-0042",
    "userRole": "PROV",
    "secondaryIdentifier": {"use": "official", "system": HPI_PERSON, "value": "92ZZRR"},
    "purposeOfUse": ["TREAT"],
    "userFullName": "Aroha Test-Clinician",
    "orgIdentifier": "GZZ123-K",
    "facilityIdentifier": "FZZ123-C",
}
SYSTEM_V1 = {
    "userIdentifier": "gw-client-7f3c",
    "userRole": "110150",
    "purposeOfUse": ["RECORDMGT"],
    "userFullName": "Example Gateway Sync Job",
    "orgIdentifier": "GQX042-A",
    "facilityIdentifier": "FQX042-E",
}
V2 = {
    "userIdentifier": "RTEST01",
    "purposeOfUse": ["POPHLTH"],
    "userFullName": "Rewi Test-Coordinator",
    "hpiOrganisation": {
        "type": "Organization",
        "identifier": {
            "use": "official",
            "system": "https://standards.digital.health.nz/ns/hpi-organisation-id",
            "value": "GQX042-A",
        },
        "display": "Example Prevention Service",
    },
    "hpiFacility": {
        "type": "Location",
        "identifier": {
            "use": "official",
            "system": "https://standards.digital.health.nz/ns/hpi-facility-id",
            "value": "FQX042-E",
        },
        "display": "Example Clinic",
    },
}
# The catalogue's published header value for USER_V1 (§2.7).
PUBLISHED = (
    "eyJ1c2VySWRlbnRpZmllciI6ImNsaW4tMDA0MiIsInVzZXJSb2xlIjoiUFJPViIsInNlY29uZGFyeUlk"
    "ZW50aWZpZXIiOnsidXNlIjoib2ZmaWNpYWwiLCJzeXN0ZW0iOiJodHRwczovL3N0YW5kYXJkcy5kaWdp"
    "dGFsLmhlYWx0aC5uei9ucy9ocGktcGVyc29uLWlkIiwidmFsdWUiOiI5MlpaUlIifSwicHVycG9zZU9m"
    "VXNlIjpbIlRSRUFUIl0sInVzZXJGdWxsTmFtZSI6IkFyb2hhIFRlc3QtQ2xpbmljaWFuIiwib3JnSWRl"
    "bnRpZmllciI6IkdaWjEyMy1LIiwiZmFjaWxpdHlJZGVudGlmaWVyIjoiRlpaMTIzLUMifQ=="
)
SETTINGS = RequestContextSettings()


def encode(value: Any, *, url: bool = False, pad: bool = True) -> str:
    raw = json.dumps(value).encode() if not isinstance(value, bytes) else value
    text = (base64.urlsafe_b64encode if url else base64.b64encode)(raw).decode()
    return text if pad else text.rstrip("=")


def test_request_context_published_v1_user_example_is_valid() -> None:
    context = parse_request_context(PUBLISHED, SETTINGS, client_id="any")
    assert (context.version, context.user_role) == ("v1", "PROV")
    assert (context.organisation, context.facility) == ("GZZ123-K", "FZZ123-C")
    assert context.purpose_of_use == ("TREAT",)
    assert json.loads(base64.b64decode(context.encoded)) == USER_V1


def test_request_context_system_v1_must_name_the_client() -> None:
    context = parse_request_context(
        encode(SYSTEM_V1), SETTINGS, client_id="gw-client-7f3c"
    )
    assert context.is_system
    with pytest.raises(InvalidRequestContext) as refused:
        parse_request_context(encode(SYSTEM_V1), SETTINGS, client_id="other")
    assert refused.value.detail == "request_context_system_client_mismatch"


def test_request_context_v2_example_is_valid() -> None:
    context = parse_request_context(encode(V2), SETTINGS, client_id="c")
    assert context.version == "v2"
    assert (context.organisation, context.facility) == ("GQX042-A", "FQX042-E")


@pytest.mark.parametrize(
    "spelling",
    [
        encode(USER_V1),
        encode(USER_V1, pad=False),
        encode(USER_V1, url=True),
        encode(USER_V1, url=True, pad=False),
        "  " + encode(USER_V1) + " ",
    ],
)
def test_request_context_spellings_decode_alike(spelling: str) -> None:
    context = parse_request_context(spelling, SETTINGS, client_id="c")
    # Whatever the spelling, what is forwarded is one canonical encoding.
    assert context.encoded == PUBLISHED
    assert spelling.strip() != PUBLISHED


def test_request_context_reencoding_drops_unknown_members() -> None:
    smuggled = {**USER_V1, "x-admin": True, "encryptedClaims": ["a"]}
    context = parse_request_context(encode(smuggled), SETTINGS, client_id="c")
    decoded = json.loads(base64.b64decode(context.encoded))
    assert "x-admin" not in decoded and "encryptedClaims" not in decoded


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    value = {**base, **changes}
    return {k: v for k, v in value.items() if v is not DROP}


DROP = object()


@pytest.mark.parametrize(
    ("header", "detail", "expression"),
    [
        ("not-base64!!", "request_context_not_base64", None),
        ("a+b_c", "request_context_not_base64", None),
        (encode(b"\xff\xfe"), "request_context_json_invalid_utf8", None),
        (encode(b'{"a":1,"a":2}'), "request_context_json_duplicate_member", None),
        (encode(b"{" * 20 + b"}" * 20), "request_context_json_malformed", None),
        (encode(b"not json"), "request_context_json_malformed", None),
        (encode([]), "request_context_not_object", None),
        (encode("TREAT"), "request_context_not_object", None),
        (encode({"userRole": "PROV"}), "request_context_schema", "userIdentifier"),
        (
            encode(_with(USER_V1, purposeOfUse=[])),
            "request_context_schema",
            "purposeOfUse",
        ),
        (
            encode(_with(USER_V1, purposeOfUse="TREAT")),
            "request_context_schema",
            "purposeOfUse",
        ),
        (
            encode(_with(USER_V1, purposeOfUse=["SHOPPING"])),
            "request_context_purpose_of_use",
            "purposeOfUse",
        ),
        (
            encode(_with(USER_V1, userRole="DOCTOR")),
            "request_context_schema",
            "userRole",
        ),
        (encode(_with(USER_V1, userRole=7)), "request_context_schema", "userRole"),
        (
            encode(_with(USER_V1, facilityIdentifier="FZZ123-A")),
            "request_context_identifier",
            "facilityIdentifier",
        ),
        (
            encode(_with(USER_V1, orgIdentifier="GZZ123-A")),
            "request_context_identifier",
            "orgIdentifier",
        ),
        (
            encode(_with(USER_V1, secondaryIdentifier=DROP)),
            "request_context_schema",
            "secondaryIdentifier",
        ),
        (
            encode(
                _with(
                    USER_V1,
                    secondaryIdentifier={
                        "use": "official",
                        "system": HPI_PERSON,
                        "value": "ZZ",
                    },
                )
            ),
            "request_context_identifier",
            "secondaryIdentifier.value",
        ),
        (
            encode(
                _with(
                    USER_V1,
                    secondaryIdentifier={
                        "use": "official",
                        "system": "https://evil.example/ns",
                        "value": "x",
                    },
                )
            ),
            "request_context_schema",
            "secondaryIdentifier.system",
        ),
        (
            encode(_with(USER_V1, userIdentifier="aroha@example.nz")),
            "request_context_user_identifier_email",
            "userIdentifier",
        ),
        (
            encode(
                _with(
                    SYSTEM_V1,
                    userIdentifier="c",
                    secondaryIdentifier=USER_V1["secondaryIdentifier"],
                )
            ),
            "request_context_system_secondary_identifier",
            "secondaryIdentifier",
        ),
        (encode(_with(V2, userRole="PROVIDER")), "request_context_schema", "userRole"),
        (
            encode(_with(V2, userRole="110150")),
            "request_context_schema",
            "userRole",
        ),
        (
            encode(
                _with(
                    V2,
                    hpiFacility={
                        **V2["hpiFacility"],
                        "identifier": {
                            **V2["hpiFacility"]["identifier"],
                            "value": "FQX042-A",
                        },
                    },
                )
            ),
            "request_context_identifier",
            "hpiFacility.identifier.value",
        ),
        (
            encode(
                _with(V2, hpiFacility={**V2["hpiFacility"], "type": "Organization"})
            ),
            "request_context_schema",
            "hpiFacility.identifier.system",
        ),
        ("A" * 7000, "request_context_too_large", None),
    ],
)
def test_request_context_invalid_kinds_are_refused(
    header: str, detail: str, expression: str | None
) -> None:
    with pytest.raises(InvalidRequestContext) as refused:
        parse_request_context(header, SETTINGS, client_id="c")
    assert refused.value.status == 400
    assert refused.value.detail == detail
    where = f"Request-Context.{expression}" if expression else "Request-Context"
    assert refused.value.expression == where
    assert "Aroha" not in refused.value.message


def test_request_context_settings_narrow_and_widen() -> None:
    narrow = RequestContextSettings(
        purpose_of_use=("RECORDMGT",), user_roles=("110150",)
    )
    with pytest.raises(InvalidRequestContext):
        parse_request_context(encode(USER_V1), narrow, client_id="c")
    lenient = RequestContextSettings(accept_purpose_string=True)
    context = parse_request_context(
        encode(_with(USER_V1, purposeOfUse="TREAT")), lenient, client_id="c"
    )
    assert context.purpose_of_use == ("TREAT",)
    strict = RequestContextSettings(strict=True)
    with pytest.raises(InvalidRequestContext) as refused:
        parse_request_context(encode({**USER_V1, "extra": 1}), strict, client_id="c")
    assert refused.value.detail == "request_context_unknown_member"
    v1_only = RequestContextSettings(schema_version="v1")
    with pytest.raises(InvalidRequestContext):
        parse_request_context(encode(V2), v1_only, client_id="c")


def test_request_context_allow_list_admits_published_fixtures() -> None:
    fixture = _with(USER_V1, facilityIdentifier="FXX999-K")
    with pytest.raises(InvalidRequestContext):
        parse_request_context(encode(fixture), SETTINGS, client_id="c")
    context = parse_request_context(
        encode(fixture), SETTINGS, client_id="c", allow_list=("FXX999-K",)
    )
    assert context.facility == "FXX999-K"


def test_request_context_client_contracts_are_403() -> None:
    from kaitiaki.errors import Forbidden

    contracts = RequestContextSettings(
        client_purposes={"c": ("RECORDMGT",)},
        client_organisations={"c": "GQX042-A", "d": "gzz123-k"},
    )
    with pytest.raises(Forbidden) as refused:
        parse_request_context(encode(USER_V1), contracts, client_id="c")
    assert refused.value.detail == "request_context_purpose_not_contracted"
    assert parse_request_context(encode(USER_V1), contracts, client_id="d")
    with pytest.raises(Forbidden) as mismatch:
        parse_request_context(encode(V2), contracts, client_id="d")
    assert mismatch.value.detail == "request_context_organisation_mismatch"
    assert parse_request_context(encode(USER_V1), contracts, client_id="other")


def test_reader_remembers_a_value_but_checks_the_client_every_time() -> None:
    from kaitiaki.errors import Forbidden

    contracts = RequestContextSettings(client_purposes={"c": ("TREAT",)})
    reader = RequestContextReader(contracts)
    value = encode(SYSTEM_V1)
    assert reader.read(value, client_id="gw-client-7f3c").is_system
    assert len(reader) == 1
    # Remembered, yet a system context still has to name this request's client,
    with pytest.raises(InvalidRequestContext) as refused:
        reader.read(value, client_id="other")
    assert refused.value.detail == "request_context_system_client_mismatch"
    # and the client's contract is still applied.
    with pytest.raises(Forbidden):
        reader.read(encode(USER_V1 | {"purposeOfUse": ["RECORDMGT"]}), client_id="c")
    assert reader.read(encode(USER_V1), client_id="c").purpose_of_use == ("TREAT",)


def test_reader_never_remembers_an_invalid_value() -> None:
    reader = RequestContextReader(SETTINGS)
    value = encode(USER_V1 | {"orgIdentifier": "GZZ123-X"})  # bad check character
    for _ in range(2):
        with pytest.raises(InvalidRequestContext):
            reader.read(value, client_id="c")
    assert len(reader) == 0


def test_reader_does_not_remember_long_values() -> None:
    reader = RequestContextReader(SETTINGS)
    padded = encode(json.dumps(USER_V1, indent=150).encode())  # whitespace
    assert len(padded) > RequestContextReader.MEMO_MAX_CHARS
    reader.read(padded, client_id="c")
    assert len(reader) == 0
