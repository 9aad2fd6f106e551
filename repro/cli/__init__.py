"""The `repro` command line."""

from repro.cli.main import main

__all__ = ["main"]
