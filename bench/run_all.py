"""`make bench`: run every bench/bench_*.py and write docs/benchmarks.md.

Each benchmark module has ``main() -> str`` returning a Markdown section (its figures side by side with
its baseline, measured in the same run). Run one alone: ``python -m bench.run_all bench_seed``.
Benchmarks use their own database (``dpi_bench``) on the same server, never the demo or test data.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    sections = {}
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        sections[name] = module.main().rstrip() + f"\n\n_(section ran in {time.perf_counter() - t0:.0f} s)_\n"
    existing = _read_sections()
    existing.update(sections)
    header = (
        "# Benchmarks\n\nMeasured by `make bench` (scripts in `bench/`), each figure beside its baseline from "
        "the same run.\n\n"
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{_cores()} cores, Python {platform.python_version()}.\n\n"
    )
    body = "\n".join(f"<!-- section:{k} -->\n{v}<!-- /section:{k} -->\n" for k, v in sorted(existing.items()))
    OUT.write_text(header + body)
    print(f"wrote {OUT}")
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def _read_sections() -> dict[str, str]:
    if not OUT.exists():
        return {}
    import re

    text = OUT.read_text()
    return {
        m.group(1): m.group(2) for m in re.finditer(r"<!-- section:(\w+) -->\n(.*?)<!-- /section:\1 -->", text, re.S)
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
