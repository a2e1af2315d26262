"""HART: hybrid autoregressive text-to-image generation.

``HARTPipeline`` is the Python API; the hybrid tokenizer lives in the sibling package
``tokenizer``.
"""

from hart.pipeline import HARTPipeline, PipelineOutput

__version__ = "0.1.0"
__all__ = ["HARTPipeline", "PipelineOutput"]
