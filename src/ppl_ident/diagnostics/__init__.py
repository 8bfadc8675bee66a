"""Identifiability diagnostics: flat modules of pure functions."""

from ppl_ident.diagnostics.calibration import (
    LEVELS,
    Alignment,
    apply_alignment,
    calibration_summary,
    coverage_tolerance,
    fit_alignment,
    interval_coverage,
    sd_error_correlation,
)
from ppl_ident.diagnostics.mcc import MCCResult, correlation_matrix, matched_r2, mcc

__all__ = ["MCCResult", "correlation_matrix", "matched_r2", "mcc"]
__all__ += ["LEVELS", "Alignment", "apply_alignment", "calibration_summary", "coverage_tolerance",
            "fit_alignment", "interval_coverage", "sd_error_correlation"]
