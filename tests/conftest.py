"""Shared test set-up: pytester, for testing the derive pytest plugin."""

pytest_plugins = ["pytester"]
