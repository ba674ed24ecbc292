"""The HTTP inference service (``crackscan serve``): FastAPI app, routes, limits, metrics, web page.

Built on the same reader, predictor, tiling and measurement as the CLI, so the service
answers exactly what ``crackscan predict`` / ``inspect`` would. Imports no torch.
"""

from __future__ import annotations

from crackscan.serve.app import create_app
from crackscan.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
