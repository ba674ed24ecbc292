"""Crack analysis on masks: measurement (length, width, orientation) and severity.

No torch here: this is on the inference path.
"""

from crackscan.analysis.measure import (
    CrackMeasurement,
    ImageMeasurement,
    MeasureError,
    measure_file,
    measure_mask,
    width_map,
    write_csv,
    write_json,
)
from crackscan.analysis.severity import SeverityBands, SeverityError

__all__ = [
    "CrackMeasurement",
    "ImageMeasurement",
    "MeasureError",
    "SeverityBands",
    "SeverityError",
    "measure_file",
    "measure_mask",
    "width_map",
    "write_csv",
    "write_json",
]
