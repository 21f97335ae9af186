"""The `aerec` command line: parses options, calls the library, prints."""

from aerec_cli.cli.commands import app, main

__all__ = ["app", "main"]
