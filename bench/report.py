"""The benchmark's report: rows of figures by section, PASS/FAIL verdicts, and the summary."""

from __future__ import annotations

import sys
import time


def log(text: str) -> None:
    """Progress on stderr (the report itself goes to stdout and bench/results/latest.txt)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def secs(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


class Table:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.verdicts: list[tuple[str, bool]] = []

    def section(self, title: str) -> None:
        self.lines += ["", title, "-" * len(title)]

    def row(self, label: str, value: str, note: str = "") -> None:
        self.lines.append(f"  {label:<52} {value:>16}  {note}".rstrip())

    def target(self, label: str, ok: bool, detail: str) -> None:
        self.verdicts.append((label, ok))
        self.lines.append(f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}")

    def note(self, text: str) -> None:
        self.lines.append(f"  note: {text}")

    def render(self, header: list[str]) -> str:
        summary = ["", "Targets", "-------"] + [
            f"  {'PASS' if ok else 'FAIL'}  {label}" for label, ok in self.verdicts
        ]
        return "\n".join(header + self.lines + summary) + "\n"
