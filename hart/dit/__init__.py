"""Latent diffusion baselines trained on the same data, text encoder and tokenizer latents as HART.

``DiTDenoiser`` wraps diffusers' ``PixArtTransformer2DModel`` (adaLN-single timestep conditioning,
cross-attention to the text) at small sizes; it denoises the continuous latent f of a HART
tokenizer (its encoder output before quantisation), scaled to unit variance.
"""

from hart.dit.model import DIT_PRESETS, DiTConfig, DiTDenoiser

__all__ = ["DIT_PRESETS", "DiTConfig", "DiTDenoiser"]
