"""Contracts of the multi-scale residual quantizer (VAR Alg. 1 and 2, HART hybrid split)."""

import torch
import torch.nn.functional as F

from tokenizer import MultiScaleQuantizer

PATCH_NUMS = (1, 2, 3, 5, 8)
C, V = 4, 64


def make_quantizer(seed: int = 0) -> MultiScaleQuantizer:
    torch.manual_seed(seed)
    q = MultiScaleQuantizer(V, C, PATCH_NUMS, quant_resi=0.5, num_phis=3)
    torch.nn.init.normal_(q.embedding.weight)  # spread codes so nearest-code ties are impossible
    return q


def random_latent(B: int = 2) -> torch.Tensor:
    return torch.randn(B, C, 8, 8, generator=torch.Generator().manual_seed(3))


def test_indices_have_one_map_per_scale():
    q = make_quantizer()
    out = q(random_latent())
    assert [tuple(i.shape) for i in out.indices] == [(2, p, p) for p in PATCH_NUMS]
    assert all(i.dtype == torch.long and 0 <= int(i.min()) and int(i.max()) < V for i in out.indices)


def test_codes_round_trip_to_their_indices():
    q = make_quantizer()
    idx = torch.randint(V, (2, 5, 5))
    assert torch.equal(q.nearest_code(q.lookup(idx)), idx)


def test_indices_to_f_hat_matches_quantizer_f_hat_and_residual_is_exact():
    q = make_quantizer()
    f = random_latent()
    with torch.no_grad():
        out = q(f)
        f_hat = q.indices_to_f_hat(out.indices)
    # The straight-through f_hat equals the sum of blended codes in value.
    torch.testing.assert_close(out.f_hat, f_hat, atol=1e-5, rtol=0)
    residual = f - f_hat
    torch.testing.assert_close(f_hat + residual, f, atol=1e-6, rtol=0)
    # The residual is what the codebook missed: strictly smaller than f itself.
    assert residual.pow(2).mean() < f.pow(2).mean()


def test_re_encoding_f_hat_reproduces_the_coarsest_index():
    # Scale 1 sees area-downsample(f) only; quantizing the code it chose gives the same index.
    q = make_quantizer()
    f = random_latent()
    with torch.no_grad():
        idx0 = q(f).indices[0]
        r0 = F.interpolate(f, size=(1, 1), mode="area")
    assert torch.equal(q.nearest_code(r0), idx0)


def test_teacher_forcing_inputs_match_sampling_updates_step_by_step():
    q = make_quantizer()
    with torch.no_grad():
        indices = q(random_latent()).indices
        tf = q.teacher_forcing_inputs(indices)
        assert tf.shape == (2, sum(p * p for p in PATCH_NUMS) - 1, C)
        f_hat, start = torch.zeros(2, C, 8, 8), 0
        for k, idx in enumerate(indices):
            f_hat, nxt = q.next_scale_input(k, f_hat, q.lookup(idx))
            if k == len(PATCH_NUMS) - 1:
                assert nxt is None
                break
            p = PATCH_NUMS[k + 1]
            assert nxt.shape == (2, C, p, p)
            torch.testing.assert_close(tf[:, start:start + p * p], nxt.flatten(2).transpose(1, 2))
            start += p * p
        torch.testing.assert_close(f_hat, q.indices_to_f_hat(indices))


def test_phis_are_shared_by_position_along_the_scales():
    q = make_quantizer()
    assert q.phi(0) is q.phis[0] and q.phi(len(PATCH_NUMS) - 1) is q.phis[-1]


def test_vq_loss_trains_codebook_and_encoder_output():
    q = make_quantizer()
    f = random_latent().requires_grad_(True)
    out = q(f)
    out.vq_loss.backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
    assert q.embedding.weight.grad.abs().sum() > 0


def test_restart_codes_overwrites_rows():
    q = make_quantizer()
    vectors = torch.full((2, C), 7.0)
    q.restart_codes(torch.tensor([3, 9]), vectors)
    assert torch.equal(q.embedding.weight[[3, 9]], vectors)
