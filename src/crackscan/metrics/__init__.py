"""Metrics in plain numpy (no sklearn, no torch), so the inference path stays light."""
