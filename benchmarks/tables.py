"""How the benchmarks print their results: aligned columns, or a Markdown table to paste
into docs/performance.md."""

from __future__ import annotations

from typing import Sequence


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, markdown: bool,
                width: int = 14) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        for row in (header, *rows):
            print("  ".join(str(x).ljust(width) for x in row))
