"""Reporting: plots (and, later, ArviZ conversion and the report writer)."""
