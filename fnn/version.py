"""The package version, in one place (model files and `fnn --version` read it)."""

__version__ = "0.1.0"
