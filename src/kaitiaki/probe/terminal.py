"""Live progress and the closing summary in the terminal (used by the CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from kaitiaki.probe.model import (
    REQUIREMENTS,
    Check,
    CheckResult,
    Report,
    Verdict,
    row_verdict,
)
from kaitiaki.probe.runner import Progress as ProgressCallback

__all__ = ["live_progress", "print_summary"]

STYLE = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.ERROR: "bold yellow",
    Verdict.NOT_APPLICABLE: "dim",
    Verdict.SKIPPED: "dim",
}


@contextmanager
def live_progress(console: Console, total: int) -> Iterator[ProgressCallback]:
    """A progress bar and one line per finished check."""
    columns = (
        TextColumn("[bold]probe[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("", total=total)

        def update(check: Check, result: CheckResult | None) -> None:
            if result is None:
                progress.update(task, description=check.id)
                return
            verdict = result.verdict
            progress.console.print(
                f"[{STYLE[verdict]}]{verdict.value:>14}[/] {check.id}: "
                f"{result.outcome.summary}",
                markup=True,
                highlight=False,
            )
            progress.advance(task)

        yield update


def print_summary(console: Console, report: Report) -> None:
    table = Table(title=f"Kaitiaki probe: {report.base_url}")
    table.add_column("#", justify="right")
    table.add_column("Requirement")
    table.add_column("Verdict")
    table.add_column("Passed / failed / checks")
    rows = report.by_row()
    for row, requirement in REQUIREMENTS.items():
        verdict = row_verdict(rows[row])
        passed = sum(r.verdict == Verdict.PASS for r in rows[row])
        failed = sum(r.verdict == Verdict.FAIL for r in rows[row])
        table.add_row(
            str(row),
            f"{requirement.title} ({requirement.catalogue_id})",
            f"[{STYLE[verdict]}]{verdict.value}[/]",
            f"{passed} / {failed} / {len(rows[row])}",
        )
    console.print(table)
