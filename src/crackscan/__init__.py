"""crackscan: find, outline and measure cracks and scratches in photos."""

__version__ = "0.1.0"
