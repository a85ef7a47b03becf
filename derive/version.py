"""The package version, in one place (the CLI, the report and the fingerprints read it)."""

__version__ = "0.1.0"
