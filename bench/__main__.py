"""Run the benchmarks: ``python -m bench [--smoke] [name ...]`` (names: the bench_<name>.py modules)."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from bench.report import Section, loop_seconds, write


def available() -> list[str]:
    here = Path(__file__).parent
    modules = pkgutil.iter_modules([str(here)])
    return sorted(m.name.removeprefix("bench_") for m in modules if m.name.startswith("bench_"))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all): {', '.join(available())}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, print only, do not write BENCHMARKS.md")
    args = parser.parse_args()
    names = args.names or available()
    unknown = set(names) - set(available())
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    sections: list[Section] = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        before = None if args.smoke else loop_seconds()
        section: Section = module.run(smoke=args.smoke)
        if before is not None:
            section.speed = (before, loop_seconds())
        print(f"\n## {section.title}\n\n{section.text()}\n", flush=True)
        sections.append(section)
    if not args.smoke:
        write(sections)
        print("BENCHMARKS.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
