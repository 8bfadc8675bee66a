"""Identifiability diagnostics: flat modules of pure functions."""

from ppl_ident.diagnostics.agreement import (MonotoneAlignment,
                                             SeedAgreement, agreement_verdict,
                                             apply_monotone_alignment, fit_monotone_alignment,
                                             seed_agreement)

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
from ppl_ident.diagnostics.collapse import (
    COLLAPSE_RATIO,
    LatentActivity,
    collapse_message,
    latent_activity,
)
from ppl_ident.diagnostics.jacobian import (
    JacobianReport,
    amari_distance,
    jacobian_decoder_route,
    jacobian_encoder_route,
    jacobian_regression_route,
    jacobian_scores,
    standardise,
    true_by_learned,
)
from ppl_ident.diagnostics.mcc import MCCResult, correlation_matrix, matched_r2, mcc
from ppl_ident.diagnostics.noise import RECOVERY_DOUBT, implied_recovery, noise_report
from ppl_ident.diagnostics.predictive import SPREAD_SE_MULTIPLE, SPREAD_TOLERANCE, spread_check
from ppl_ident.diagnostics.reference import chain_diagnostics, compare_to_reference
from ppl_ident.diagnostics.variability import (
    ExpFamilyReport,
    IdentifiabilityReport,
    VariabilityReport,
    check_identifiability,
    exponential_family_condition,
    sufficient_variability,
)

__all__ = [
    "SPREAD_SE_MULTIPLE", "SPREAD_TOLERANCE", "spread_check",
    "ExpFamilyReport", "IdentifiabilityReport", "JacobianReport", "MCCResult",
    "VariabilityReport", "amari_distance", "check_identifiability", "correlation_matrix",
    "exponential_family_condition", "jacobian_decoder_route", "jacobian_encoder_route",
    "jacobian_regression_route",
    "jacobian_scores", "matched_r2", "mcc", "standardise", "sufficient_variability",
    "true_by_learned",
    "LEVELS", "Alignment", "apply_alignment", "calibration_summary", "coverage_tolerance",
    "fit_alignment", "interval_coverage", "sd_error_correlation",
    "chain_diagnostics", "compare_to_reference",
    "SeedAgreement", "agreement_verdict", "seed_agreement",
    "MonotoneAlignment", "fit_monotone_alignment", "apply_monotone_alignment",
    "RECOVERY_DOUBT", "implied_recovery", "noise_report",
    "COLLAPSE_RATIO", "LatentActivity", "collapse_message", "latent_activity",
]
