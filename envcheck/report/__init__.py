"""Renderers of a Report: terminal (rich), JSON, JUnit XML, GitHub step summary."""
