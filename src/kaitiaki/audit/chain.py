"""The hash chain and its signed checkpoints, and the check of both.

Each record carries its instance's sequence number, the hash of the record
before it and its own hash (SHA-256 over the canonical JSON of every other
column). Every so often a ``checkpoint`` record is added whose Ed25519
signature covers the instance, its sequence number and the chain head before
it, so rewriting the chain from some point on needs the signing key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kaitiaki.audit.events import Record

__all__ = [
    "GENESIS",
    "ChainHead",
    "ChainReport",
    "CheckpointSigner",
    "check_head",
    "link",
    "record_hash",
    "verify_chains",
]

GENESIS = "0" * 64


def record_hash(record: Mapping[str, object]) -> str:
    content = {name: value for name, value in record.items() if name != "hash"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _checkpoint_message(instance: str, seq: int, prev_hash: str) -> bytes:
    return f"kaitiaki-audit-checkpoint\n{instance}\n{seq}\n{prev_hash}".encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckpointSigner:
    """Signs checkpoints with one Ed25519 key named by ``key_id``."""

    def __init__(self, key: Ed25519PrivateKey, key_id: str) -> None:
        self._key = key
        self.key_id = key_id

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    def sign(self, instance: str, seq: int, prev_hash: str) -> str:
        return _b64(self._key.sign(_checkpoint_message(instance, seq, prev_hash)))

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int = 0
    hash: str = GENESIS


def link(
    records: Sequence[Record], head: ChainHead, signer: CheckpointSigner
) -> tuple[list[Record], ChainHead]:
    """Number, link and hash ``records`` after ``head``; signs checkpoints."""
    linked: list[Record] = []
    seq, prev = head.seq, head.hash
    for record in records:
        seq += 1
        item = {**record, "seq": seq, "prev_hash": prev, "hash": None}
        if item["event_type"] == "checkpoint":
            item["key_id"] = signer.key_id
            item["signature"] = signer.sign(str(item["instance"]), seq, prev)
        item["hash"] = prev = record_hash(item)
        linked.append(item)
    return linked, ChainHead(seq, prev)


@dataclass(slots=True)
class ChainReport:
    """The result for one instance's chain: counts and the first problem."""

    instance: str
    events: int = 0
    checkpoints: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    unsigned_tail: int = 0
    unchained: int = 0
    position: str | None = None
    problem: str | None = None
    head: str = field(default=GENESIS, repr=False)
    signed: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.problem is None


def _problem(
    record: Record, report: ChainReport, keys: Mapping[str, Ed25519PublicKey]
) -> str | None:
    if record_hash(record) != record.get("hash"):
        return "edited: the record does not match its hash"
    problem = _order_problem(record, report)
    if problem is None and record.get("event_type") == "checkpoint":
        return _checkpoint_problem(record, keys)
    return problem


def _order_problem(record: Record, report: ChainReport) -> str | None:
    seq = record.get("seq")
    if not isinstance(seq, int):
        return "malformed: no sequence number"
    expected = report.last_seq + 1
    if seq > expected and report.first_seq is not None:
        return f"missing events: seq {seq} where {expected} was expected (deleted)"
    if seq < expected:
        return f"out of order: seq {seq} where {expected} was expected"
    if report.first_seq is not None and record.get("prev_hash") != report.head:
        return "does not link to the previous record (inserted or rewritten)"
    return None


def _checkpoint_problem(
    record: Record, keys: Mapping[str, Ed25519PublicKey]
) -> str | None:
    key = keys.get(str(record.get("key_id")))
    if key is None:
        return f"checkpoint signed by an unknown key {record.get('key_id')!r}"
    message = _checkpoint_message(
        str(record["instance"]), int(record["seq"] or 0), str(record["prev_hash"])
    )
    try:
        key.verify(_unb64(str(record.get("signature") or "")), message)
    except (InvalidSignature, ValueError):
        return "checkpoint signature is not valid (the chain was rewritten)"
    return None


def _start_problem(record: Record, allow_later_start: bool) -> str | None:
    if allow_later_start:
        return None
    if record.get("seq") != 1 or record.get("prev_hash") != GENESIS:
        return "missing events: the chain does not start at seq 1 (deleted)"
    return None


def _step(
    report: ChainReport,
    position: str,
    record: Record,
    keys: Mapping[str, Ed25519PublicKey],
    allow_later_start: bool,
) -> None:
    problem = None
    if report.first_seq is None:
        problem = _start_problem(record, allow_later_start)
    problem = problem or _problem(record, report, keys)
    if problem is not None:
        report.position, report.problem = position, problem
        return
    seq = int(record["seq"] or 0)
    if report.first_seq is None:
        report.first_seq = seq
    report.events += 1
    report.last_seq, report.head = seq, str(record["hash"])
    if record.get("event_type") == "checkpoint":
        report.checkpoints += 1
        report.unsigned_tail = 0
        report.signed[seq] = report.head
    else:
        report.unsigned_tail += 1


def verify_chains(
    stored: Iterable[tuple[str, Record]],
    keys: Mapping[str, Ed25519PublicKey],
    *,
    allow_later_start: bool = False,
) -> list[ChainReport]:
    """Check every instance's chain in storage order; stop each at its first
    problem, naming the storage position of the first bad record."""
    reports: dict[str, ChainReport] = {}
    for position, record in stored:
        instance = str(record.get("instance"))
        report = reports.setdefault(instance, ChainReport(instance))
        if record.get("event_type") is None and report.first_seq is None:
            # Written by a release before the chain existed: counted, not checked.
            report.unchained += 1
        elif report.ok:
            _step(report, position, record, keys, allow_later_start)
    return sorted(reports.values(), key=lambda item: item.instance)


def check_head(report: ChainReport, seq: int, hash_: str) -> None:
    """Compare a chain with the latest checkpoint kept outside the store."""
    if not report.ok:
        return
    if report.last_seq < seq:
        report.position = f"end of the {report.instance} chain"
        report.problem = (
            f"missing events at the end: the chain stops at seq {report.last_seq} "
            f"but checkpoint seq {seq} was written (deleted)"
        )
    elif report.signed.get(seq) != hash_:
        report.position = f"seq {seq}"
        report.problem = "the latest checkpoint differs from the one kept outside"
