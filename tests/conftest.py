import pytest
import torch

from tokenizer import HybridTokenizer


@pytest.fixture
def tiny_tokenizer() -> HybridTokenizer:
    """A randomly initialised 16 px tokenizer, deterministic and in eval mode."""
    torch.manual_seed(0)
    return HybridTokenizer.from_config("tiny").eval()


@pytest.fixture
def tiny_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
