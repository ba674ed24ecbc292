"""What every command shares: the two consoles, the error exit and JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

# soft_wrap: a long line (a file path, an error naming one) is printed whole, never broken
# across lines, so it can be copied and searched for; tables still fit the terminal.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (1 = failed, 2 = bad usage)."""
    err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code=code)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
