"""Training data for the tokenizer and the transformer (docs/design.md section 7).

Every dataset here is an indexable stream: item ``i`` is a deterministic function of
``(seed, i)``, so that a training run resumed at step s sees exactly the batches it would have
seen without the interruption.
"""

from tokenizer.data.images import ImageFolder, load_sklearn_samples, to_tensor
from tokenizer.data.shapes import ShapesDataset, ShapeSpec

__all__ = ["ImageFolder", "ShapeSpec", "ShapesDataset", "load_sklearn_samples", "to_tensor"]
