"""Guides (variational posteriors) for the models in :mod:`ppl_ident.models`."""

from ppl_ident.guides.encoder import encoder_guide, encoder_inputs, fullcov_encoder_guide
from ppl_ident.guides.registry import GUIDES, GuideFamily, guide_family, make_guide

__all__ = ["GUIDES", "GuideFamily", "encoder_guide", "encoder_inputs", "fullcov_encoder_guide",
           "guide_family", "make_guide"]
