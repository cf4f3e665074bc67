"""Fact gatherers. Each returns plain JSON data; none judges what it finds.

Those that import a framework or touch a GPU run in a subprocess (envcheck.runner);
``environment`` runs in-process because it only reads files and variables.
"""
