"""Identifiability diagnostics: flat modules of pure functions."""

from ppl_ident.diagnostics.mcc import MCCResult, correlation_matrix, matched_r2, mcc

__all__ = ["MCCResult", "correlation_matrix", "matched_r2", "mcc"]
