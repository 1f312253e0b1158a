"""The contract every benchmark follows, and the writer of BENCHMARKS.md.

A benchmark is a module ``bench/bench_<name>.py`` with ``run(smoke: bool) -> Section``. ``smoke`` asks
for tiny sizes (CI runs them so they do not rot; their figures are printed, never written).
BENCHMARKS.md keeps one block per benchmark between markers, so running one benchmark replaces
its own block and leaves the others as they were.

Each section also gives its headline figures as :class:`Row` s: the figure, what it is compared with
and the ratio, the target and whether it was met. They end the section's block as a table and are
kept there as JSON in an HTML comment, from which the summary at the top of BENCHMARKS.md is rebuilt
on every write: every benchmark's rows side by side, each from its own latest run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"
HEADER = """# Benchmarks

Produced by `make bench` (`python -m bench`); one block per benchmark, each with its machine, command and date.
Targets come from the issues; a missed target is reported as missed, with the profile that explains it.
"""


ROW_COLUMNS = ["measurement", "this run", "compared with", "ratio", "target", "verdict"]
SUMMARY = re.compile(r"<!-- summary: (\[.*?\]) -->")
BLOCK = re.compile(r"<!-- bench:(\w+) -->.*?<!-- /bench:\1 -->\n", re.S)


@dataclass
class Row:
    """One headline figure: against what it is compared (another design, the floor, a limit) and its target."""

    measurement: str
    figure: str
    reference: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None  # None: no target

    def verdict(self) -> str:
        return "-" if self.met is None else ("met" if self.met else "**missed**")

    def cells(self) -> list[object]:
        return [self.measurement, self.figure, self.reference, self.ratio, self.target, self.verdict()]


@dataclass
class Section:
    name: str
    title: str
    body: str  # markdown: tables and a few sentences on what the figures mean
    summary: list[Row] = field(default_factory=list)
    speed: tuple[float, float] | None = None  # ``loop_seconds()`` before and after the run

    def text(self) -> str:
        """The body, then the headline figures with their ratios and targets."""
        if not self.summary:
            return self.body.strip()
        rows = table(ROW_COLUMNS, [row.cells() for row in self.summary])
        return f"{self.body.strip()}\n\nRatios and targets:\n\n{rows}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


LOOP_ADDITIONS = 10_000_000


def loop_seconds(additions: int = LOOP_ADDITIONS) -> float:
    """This machine's speed now: its time for a pure-Python loop of additions. It is shared, and its speed
    varies by up to 2x between hours, which moves every figure here with it."""
    started, total = time.perf_counter(), 0
    for n in range(additions):
        total += n
    return time.perf_counter() - started


def table(headers: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def render(section: Section) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = json.dumps([asdict(row) for row in section.summary]).replace("--", "-\\u002d")  # never ends the comment
    speed = ""
    if section.speed is not None:
        before, after = section.speed
        took = f"took {before:.2f} s before the run and {after:.2f} s after"
        speed = f" Speed: a loop of {LOOP_ADDITIONS:,} additions {took}."
    return (
        f"<!-- bench:{section.name} -->\n## {section.title}\n\n"
        f"Machine: {machine()}. Command: `python -m bench {section.name}`. Date: {stamp}, commit {git_revision()}."
        f"{speed}\n\n"
        f"{section.text()}\n<!-- summary: {rows} -->\n<!-- /bench:{section.name} -->\n"
    )


def render_summary(text: str) -> str:
    """The summary block, from the rows kept in every benchmark's block of ``text``."""
    rows: list[list[object]] = []
    missing: list[str] = []
    for block in BLOCK.finditer(text):
        name = block.group(1)
        if name == "summary":
            continue
        found = SUMMARY.search(block.group(0))
        if found is None:
            missing.append(name)
            continue
        rows += [[name, *Row(**row).cells()] for row in json.loads(found.group(1))]
    parts = [
        "<!-- bench:summary -->\n## Summary: ratios and targets\n",
        "Every benchmark's headline figures, each from its own latest run (machine, date, details: its block).\n",
    ]
    if rows:
        parts.append(table(["benchmark", *ROW_COLUMNS], rows) + "\n")
    if missing:
        parts.append(f"Not summarised (blocks written before benchmarks kept their rows): {', '.join(missing)}.\n")
    return "\n".join(parts) + "<!-- /bench:summary -->\n"


def replace_block(text: str, name: str, block: str, *, first: bool = False) -> str:
    """``text`` with the block ``name`` replaced by ``block``, or with ``block`` added (after the header
    if ``first``, else at the end)."""
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->\n", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _m: block, text)
    if first and (at := text.find("<!-- bench:")) >= 0:
        return text[:at] + block + "\n" + text[at:]
    return text.rstrip("\n") + "\n\n" + block


def write(sections: list[Section], report: Path = REPORT) -> None:
    text = report.read_text() if report.exists() else HEADER
    for section in sections:
        text = replace_block(text, section.name, render(section))
    report.write_text(replace_block(text, "summary", render_summary(text), first=True))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
