"""Scaling out: batch inspection on a Ray cluster (:mod:`crackscan.scale.ray_engine`).

Importing this package imports neither Ray nor torch; Ray is imported when a Ray run starts.
"""
