"""The contract every benchmark follows, and the writer of BENCHMARKS.md.

A benchmark is a module ``bench/bench_<name>.py`` with ``run(smoke: bool) -> Section``. ``smoke`` asks
for tiny sizes (CI runs them so they do not rot; their figures are printed, never written).
BENCHMARKS.md keeps one block per benchmark between markers, so running one benchmark replaces
its own block and leaves the others as they were.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "BENCHMARKS.md"
HEADER = """# Benchmarks

Produced by `make bench` (`python -m bench`); one block per benchmark, each with its machine, command and date.
Targets come from the issues; a missed target is reported as missed, with the profile that explains it.
"""


@dataclass
class Section:
    name: str
    title: str
    body: str  # markdown: tables and a few sentences on what the figures mean


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
    return (
        f"<!-- bench:{section.name} -->\n## {section.title}\n\n"
        f"Machine: {machine()}. Command: `python -m bench {section.name}`. Date: {stamp}, commit {git_revision()}.\n\n"
        f"{section.body.strip()}\n<!-- /bench:{section.name} -->\n"
    )


def write(sections: list[Section]) -> None:
    text = REPORT.read_text() if REPORT.exists() else HEADER
    for section in sections:
        block = render(section)
        pattern = re.compile(rf"<!-- bench:{section.name} -->.*?<!-- /bench:{section.name} -->\n", re.S)
        text = pattern.sub(lambda _m, b=block: b, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    REPORT.write_text(text)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
