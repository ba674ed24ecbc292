"""Routers, one per area: health, models, inference, metrics, the web page."""
