"""Contracts of the token cache: the same tokens as encoding each image alone, each image once."""

import torch

from hart.pipeline import HARTPipeline
from hart.token_cache import TokenCache
from hart.train import HARTTrainConfig, HARTTrainer
from tokenizer.data.shapes import ShapesDataset


class Keyed:
    """A fixed set of ``n`` shapes served as an endless stream, with ``item_key`` (like emoji)."""

    def __init__(self, n: int = 5, size: int = 16) -> None:
        self.base, self.n = ShapesDataset(size=size, seed=3), n

    def item_key(self, index: int) -> int:
        return index % self.n

    def __getitem__(self, index: int):
        return self.base[index % self.n]


class CountingTokenizer:
    def __init__(self, tok) -> None:
        self.tok, self.calls = tok, 0

    def encode(self, images):
        self.calls += len(images)
        return self.tok.encode(images)


def test_cached_codes_equal_encoding_each_image_alone_and_each_image_is_encoded_once(tiny_tokenizer):
    data = Keyed()
    counting = CountingTokenizer(tiny_tokenizer)
    cache = TokenCache(counting, data)
    for items in ([0, 1, 2, 3], [4, 5, 6, 7], [3, 8, 9, 12]):
        images = torch.stack([data[i][0] for i in items])
        codes = cache.encode(items, images)
        for b in range(len(items)):
            alone = tiny_tokenizer.encode(images[b:b + 1])
            assert all(torch.equal(c[b], a[0]) for c, a in zip(codes.indices, alone.indices, strict=True))
            assert torch.equal(codes.residual[b], alone.residual[0])
    assert counting.calls == 5  # five distinct images
    assert not TokenCache.applies_to(ShapesDataset(size=16))


def test_a_resumed_run_on_a_cached_data_set_equals_an_uninterrupted_one(tmp_path):
    def trainer(out, resume=False):
        cfg = HARTTrainConfig(out_dir=str(out), preset="tiny", steps=4, batch_size=3, lr=3e-3, warmup_steps=1,
                              sample_every=0, ckpt_every=2)
        t = HARTTrainer(cfg, resume=resume)
        t.data = Keyed(n=4)
        t.token_cache = TokenCache(t.tok, t.data)
        return t

    full = trainer(tmp_path / "full").run()
    trainer(tmp_path / "split").run(until=2)
    split = trainer(tmp_path / "split", resume=True).run()
    a, b = HARTPipeline.from_pretrained(full), HARTPipeline.from_pretrained(split)
    sa, sb = a.transformer.state_dict(), b.transformer.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
