"""Flow Memory: a dry-run marketplace for inference capacity."""

__version__ = "0.1.0"
