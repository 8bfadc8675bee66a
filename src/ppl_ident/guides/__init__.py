"""Guides (variational posteriors) for the models in :mod:`ppl_ident.models`."""

from ppl_ident.guides.encoder import encoder_guide, encoder_inputs

__all__ = ["encoder_guide", "encoder_inputs"]
