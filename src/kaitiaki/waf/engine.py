"""Anomaly scoring over the canonical request, with RE2 rule sets per target.

Every rule whose paranoia level is at most the configured one is compiled into
one RE2 set per target kind, so a value is matched against all rules in one
linear pass. A rule scores once per request however many values it matches,
as in CRS; the request is blocked when the total reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import re2

from kaitiaki.memo import BoundedMemo
from kaitiaki.strictjson import well_formed
from kaitiaki.waf.decode import base64_text, shell_unquoted, variants
from kaitiaki.waf.rules import ALL_TARGETS, RULES, Rule

__all__ = ["Findings", "RuleEngine", "json_strings"]

_MAX_STRINGS = 50_000
# Longer values are matched every time: the memo stays within a few MiB.
_MEMO_MAX_CHARS = 1024


@dataclass(slots=True)
class Findings:
    """The rules that matched so far in one request, and their total score."""

    rules: dict[str, int] = field(default_factory=dict)

    @property
    def score(self) -> int:
        return sum(self.rules.values())

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.rules))


class _CompiledSet:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.matcher: Any = None
        if rules:
            options = re2.Options()
            options.max_mem = 64 << 20
            self.matcher = re2.Set.SearchSet(options)
            for rule in rules:
                self.matcher.Add(rule.pattern)
            self.matcher.Compile()

    def match(self, text: str) -> Iterator[Rule]:
        if self.matcher is None or not text:
            return
        try:
            found = self.matcher.Match(text)
        except UnicodeEncodeError:
            # A lone surrogate from a JSON string or a decoding: RE2 takes
            # UTF-8 only.
            found = self.matcher.Match(well_formed(text))
        for index in found or ():
            yield self.rules[index]


class RuleEngine:
    """The compiled rules of one paranoia level."""

    def __init__(
        self, paranoia: int, rules: Iterable[Rule] = RULES, *, memo_size: int = 4096
    ) -> None:
        chosen = [rule for rule in rules if rule.paranoia <= paranoia]
        self._sets = {
            target: _CompiledSet([r for r in chosen if target in r.targets])
            for target in ALL_TARGETS
        }
        self._base64 = {
            target: _CompiledSet(
                [r for r in chosen if target in r.targets and r.base64]
            )
            for target in ALL_TARGETS
        }
        self._cmdline = {
            target: _CompiledSet(
                [r for r in chosen if target in r.targets and r.cmdline]
            )
            for target in ALL_TARGETS
        }
        # (target, value) -> the rules it matches: the same header values and
        # search parameters come back on request after request.
        self._memo: BoundedMemo[tuple[str, str], tuple[Rule, ...]]
        self._memo = BoundedMemo(memo_size)

    def scan(
        self,
        target: str,
        value: str,
        findings: Findings,
        *,
        excluded: frozenset[str] = frozenset(),
        header: str | None = None,
    ) -> None:
        """Match one value and its decodings; record every rule that fires."""
        short = len(value) <= _MEMO_MAX_CHARS
        matched = self._memo.get((target, value)) if short else None
        if matched is None:
            matched = self._match(target, value)
            if short:
                self._memo.put((target, value), matched)
        for rule in matched:
            _record(rule, findings, excluded, header)

    def _match(self, target: str, value: str) -> tuple[Rule, ...]:
        """Every rule that matches ``value`` or one of its decodings, once."""
        compiled = self._sets[target]
        found = variants(value)
        matched: dict[str, Rule] = {}
        for text in found:
            matched.update((rule.id, rule) for rule in compiled.match(text))
        unquoted = shell_unquoted(found[-1])
        if unquoted is not None:
            cmdline = self._cmdline[target]
            matched.update((rule.id, rule) for rule in cmdline.match(unquoted))
        decoded = base64_text(value) if len(value) >= 16 else None
        if decoded is not None:
            for text in variants(decoded):
                base64 = self._base64[target]
                matched.update((rule.id, rule) for rule in base64.match(text))
        return tuple(matched.values())


def _record(
    rule: Rule, findings: Findings, excluded: frozenset[str], header: str | None
) -> None:
    if rule.id in excluded or rule.id in findings.rules:
        return
    if rule.headers and header not in rule.headers:
        return
    findings.rules[rule.id] = rule.score


def json_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a parsed JSON body with its dotted path, keys included.

    The walk is iterative and stops after ``_MAX_STRINGS`` strings; bodies are
    already bounded in size and depth by the strict parser.
    """
    stack: list[tuple[Any, str]] = [(node, path)]
    seen = 0
    while stack and seen < _MAX_STRINGS:
        item, where = stack.pop()
        if isinstance(item, str):
            seen += 1
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                seen += 1
                yield where + "#key", key
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, where) for child in item)
