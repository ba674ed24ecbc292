"""Command groups that are planned but not built yet.

Each one says so and exits with status 2, so scripts can tell "not available" from
"ran and failed" (1). A group is removed from here when its real module lands.
"""

from __future__ import annotations

import typer
from rich.console import Console

# name -> (what it will do, the issue that builds it)
PENDING: dict[str, tuple[str, str]] = {}

_err = Console(stderr=True)


def _make_pending(name: str, what: str, issue: str):  # type: ignore[no-untyped-def]
    def pending(ctx: typer.Context) -> None:
        _err.print(f"[yellow]crackscan {name}[/]: not built yet ({what}; planned in issue {issue}).")
        raise typer.Exit(code=2)

    pending.__doc__ = f"(not built yet) {what[0].upper()}{what[1:]}."
    return pending


def register_pending(app: typer.Typer) -> None:
    """Add a placeholder command for every group that is still pending."""
    registered = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    for name, (what, issue) in PENDING.items():
        if name in registered:
            continue
        app.command(
            name=name,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_make_pending(name, what, issue))
