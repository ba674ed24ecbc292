"""The HTTP inference service (``crackscan serve``): FastAPI app, routes, limits, metrics, web page.

Built on the same reader, predictor, tiling and measurement as the CLI, so the service
answers exactly what ``crackscan predict`` / ``inspect`` would. Imports no torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy: `crackscan --help` reads the serve defaults from serve.settings, and importing
    # the package must not pull in FastAPI (half a second) for every other command.
    if name == "create_app":
        from crackscan.serve.app import create_app

        return create_app
    if name == "ServeSettings":
        from crackscan.serve.settings import ServeSettings

        return ServeSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
