"""HART: hybrid autoregressive text-to-image generation.

The hybrid tokenizer lives in the sibling package ``tokenizer``; this package holds the CLI and,
as they land, the text encoder, the AR transformer, the residual diffusion head and the sampler.
"""

__version__ = "0.1.0"
