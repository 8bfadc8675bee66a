"""Reporting: ArviZ InferenceData, plots and the HTML report."""
