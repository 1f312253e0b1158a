"""BENCHMARKS.md upkeep (``bench/report.py``): running one benchmark replaces its own block and the summary
is rebuilt from the rows every block keeps, so it always shows each benchmark's latest run."""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import Row, Section, loop_seconds, write


def section(name: str, figure: str, met: bool | None) -> Section:
    rows = [Row(f"{name} rate", figure, "other -- design", "2x", ">= 1" if met is not None else "-", met)]
    return Section(name, f"The {name} benchmark", f"Body of {name}, with -- dashes.", rows)


def test_the_summary_lists_every_blocks_rows_and_follows_a_block_that_is_run_again(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    write([section("alpha", "10/s", True), section("beta", "3 s", None)], report)
    write([section("alpha", "7/s", False)], report)  # alpha again, beta untouched
    text = report.read_text()
    summary = text[text.index("<!-- bench:summary -->") : text.index("<!-- /bench:summary -->")]
    assert "| alpha | alpha rate | 7/s | other -- design | 2x | >= 1 | **missed** |" in summary
    assert "| beta | beta rate | 3 s | other -- design | 2x | - | - |" in summary
    assert "10/s" not in text
    assert text.index("<!-- bench:summary -->") < text.index("<!-- bench:alpha -->") < text.index("<!-- bench:beta -->")
    assert text.count("<!-- bench:summary -->") == 1
    assert "Body of beta, with -- dashes." in text
    comments = re.findall(r"<!-- summary: (.*?) -->", text)
    assert len(comments) == 2
    assert all("--" not in comment for comment in comments)  # "--" would end the HTML comment early


def test_a_block_written_before_rows_were_kept_is_named_as_missing(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n<!-- bench:old -->\n## Old\n\nFigures.\n<!-- /bench:old -->\n")
    write([section("alpha", "10/s", True)], report)
    text = report.read_text()
    assert "Not summarised (blocks written before benchmarks kept their rows): old." in text
    assert "| alpha | alpha rate | 10/s |" in text
    assert "Figures." in text


def test_a_block_says_how_fast_the_machine_ran_when_that_was_measured(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    timed = section("alpha", "10/s", True)
    timed.speed = (0.58, 1.21)
    write([timed, section("beta", "3 s", None)], report)
    text = report.read_text()
    alpha = text[text.index("<!-- bench:alpha -->") : text.index("<!-- /bench:alpha -->")]
    beta = text[text.index("<!-- bench:beta -->") : text.index("<!-- /bench:beta -->")]
    assert "Speed: a loop of 10,000,000 additions took 0.58 s before the run and 1.21 s after." in alpha
    assert "Speed:" not in beta
    assert loop_seconds(1000) > 0
