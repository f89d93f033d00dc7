"""Lock reading, environment verification and the offline advisory audit."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import pytest

from kaitiaki.deps import (
    audit_requirements,
    load_advisories,
    read_lock,
    verify_environment,
)
from kaitiaki.deps.advisories import Ignore, read_ignores
from kaitiaki.deps.lockfile import LockedRequirement
from kaitiaki.errors import ConfigError

SNAPSHOT = Path(__file__).resolve().parents[3] / "shared/data/pypa-advisories"
TODAY = dt.date(2026, 12, 3)


def test_read_lock_parses_hashes_and_markers(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(
        "# comment\n"
        "Foo_Bar==1.2 \\\n    --hash=sha256:" + "a" * 64 + " \\\n"
        "    --hash=sha256:" + "b" * 64 + "\n"
        "    # via something\n"
        "baz==2.0 ; python_version < '3.0' \\\n    --hash=sha256:" + "c" * 64 + "\n"
    )
    foo, baz = read_lock(lock)
    assert (foo.name, foo.version, len(foo.hashes)) == ("foo-bar", "1.2", 2)
    assert foo.applies()
    assert baz.marker == "python_version < '3.0'"
    assert not baz.applies()


@pytest.mark.parametrize("line", ["foo>=1.0", "foo", "foo==1.0; python_version <<< 3"])
def test_read_lock_refuses_unpinned(tmp_path: Path, line: str) -> None:
    lock = tmp_path / "r.txt"
    lock.write_text(line + "\n")
    with pytest.raises(ConfigError):
        read_lock(lock)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def _install_fake(site: Path, name: str, version: str, code: bytes) -> Path:
    module = site / f"{name}.py"
    module.write_bytes(code)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    (info / "RECORD").write_text(
        f"{name}.py,{_record_hash(code)},{len(code)}\n{info.name}/RECORD,,\n"
    )
    return module


def test_verify_environment_detects_tampering(tmp_path: Path) -> None:
    module = _install_fake(tmp_path, "goodpkg", "1.0", b"VALUE = 1\n")
    _install_fake(tmp_path, "sneaky", "0.1", b"")
    locked = [
        LockedRequirement("goodpkg", "1.0", frozenset()),
        LockedRequirement("absent", "2.0", frozenset()),
    ]
    assert [str(d) for d in verify_environment(locked, path=[str(tmp_path)])] == [
        "absent: locked but not installed",
        "sneaky: installed but in no lock file",
    ]

    module.write_bytes(b"VALUE = 2  # patched\n")
    problems = [str(d) for d in verify_environment(locked, path=[str(tmp_path)])]
    assert "goodpkg: file changed since install: goodpkg.py" in problems

    locked[0] = LockedRequirement("goodpkg", "1.1", frozenset())
    problems = [str(d) for d in verify_environment(locked, path=[str(tmp_path)])]
    assert "goodpkg: installed 1.0, locked 1.1" in problems


def test_verify_environment_accepts_this_venv() -> None:
    root = Path(__file__).resolve().parents[2]
    locked = read_lock(root / "requirements.lock") + read_lock(
        root / "requirements-dev.lock"
    )
    # After `make bench` the benchmark's extras are installed too.
    optional = read_lock(root / "requirements-bench.lock")
    assert verify_environment(locked, optional=optional) == []


def test_optional_requirements_need_not_be_installed_but_must_match(
    tmp_path: Path,
) -> None:
    _install_fake(tmp_path, "goodpkg", "1.0", b"VALUE = 1\n")
    _install_fake(tmp_path, "benchpkg", "2.0", b"")
    locked = [LockedRequirement("goodpkg", "1.0", frozenset())]
    optional = [
        LockedRequirement("benchpkg", "2.0", frozenset()),
        LockedRequirement("chartpkg", "3.0", frozenset()),
    ]
    site = [str(tmp_path)]
    assert verify_environment(locked, optional=optional, path=site) == []
    optional[0] = LockedRequirement("benchpkg", "2.1", frozenset())
    assert [
        str(d) for d in verify_environment(locked, optional=optional, path=site)
    ] == ["benchpkg: installed 2.0, locked 2.1"]


ADVISORY = """
id: TEST-1
aliases: [CVE-0000-1]
modified: "2024-05-01T00:00:00Z"
affected:
- package: {name: Demo_Pkg, ecosystem: PyPI}
  ranges:
  - type: ECOSYSTEM
    events: [{introduced: "1.0"}, {fixed: "1.4.2"}, {introduced: "2.0"},
             {last_affected: "2.1"}]
  versions: ["0.9"]
"""


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9", True),
        ("0.8", False),
        ("1.0", True),
        ("1.4.1", True),
        ("1.4.2", False),
        ("1.10", False),
        ("2.0", True),
        ("2.1", True),
        ("2.1.1", False),
        ("2.0rc1", False),
    ],
)
def test_audit_compares_versions_not_text(
    tmp_path: Path, version: str, affected: bool
) -> None:
    (tmp_path / "TEST-1.yaml").write_text(ADVISORY)
    (tmp_path / "OLD.yaml").write_text(
        ADVISORY.replace("TEST-1", "OLD-1") + 'withdrawn: "2024-06-01T00:00:00Z"\n'
    )
    advisories = load_advisories(tmp_path)
    assert advisories.snapshot == "2024-05-01"
    findings = audit_requirements(
        [LockedRequirement("demo-pkg", version, frozenset())], advisories, today=TODAY
    )
    assert [f.advisory for f in findings] == (["TEST-1"] if affected else [])


def test_audit_ignore_needs_reason_and_expires(tmp_path: Path) -> None:
    (tmp_path / "TEST-1.yaml").write_text(ADVISORY)
    advisories = load_advisories(tmp_path)
    pin = [LockedRequirement("demo-pkg", "1.1", frozenset())]
    valid = Ignore("CVE-0000-1", "not reachable from Kaitiaki", dt.date(2027, 1, 1))
    expired = Ignore("TEST-1", "old excuse", dt.date(2026, 1, 1))
    (finding,) = audit_requirements(pin, advisories, ignores=[valid], today=TODAY)
    assert finding.ignored_because is not None
    (finding,) = audit_requirements(pin, advisories, ignores=[expired], today=TODAY)
    assert finding.ignored_because is None

    bad = tmp_path / "ignore.toml"
    bad.write_text('[[ignore]]\nid = "TEST-1"\nreason = "x"\n')
    with pytest.raises(ConfigError):
        read_ignores(bad)
    good = tmp_path / "good.toml"
    good.write_text('[[ignore]]\nid = "TEST-1"\nreason = "x"\nexpires = 2027-01-01\n')
    assert read_ignores(good)[0].expires == dt.date(2027, 1, 1)


def test_audit_finds_known_vulnerability_in_real_snapshot() -> None:
    advisories = load_advisories(SNAPSHOT / "vulns" / "jinja2")
    findings = audit_requirements(
        [LockedRequirement("jinja2", "2.7", frozenset())], advisories, today=TODAY
    )
    assert "PYSEC-2014-8" in {f.advisory for f in findings}
    fixed = audit_requirements(
        [LockedRequirement("jinja2", "3.1.6", frozenset())], advisories, today=TODAY
    )
    assert fixed == []
