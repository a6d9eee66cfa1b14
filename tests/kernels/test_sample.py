import pytest
import torch

from kernels import reference
from kernels.ops import sample


def _params(n_rows, temperature=1.0, top_k=0, top_p=1.0, device="cpu"):
    return (
        torch.full((n_rows,), temperature, device=device),
        torch.full((n_rows,), top_k, dtype=torch.int64, device=device),
        torch.full((n_rows,), top_p, device=device),
    )


@pytest.mark.parametrize("vocab", [1000, 77, 1])  # ordinary, odd, and a one-token vocabulary
@pytest.mark.parametrize(
    "temperature, top_k, top_p",
    [
        (0.0, 0, 1.0),  # greedy
        (1.0, 0, 1.0),  # plain sampling
        (0.7, 20, 1.0),  # top-k
        (1.3, 0, 0.8),  # top-p
        (0.9, 50, 0.9),  # both
    ],
)
def test_sample_matches_reference_across_the_draw(vocab, temperature, top_k, top_p, device):
    """Over 32 draws spread across [0, 1), Triton picks exactly the reference's token (untied fp32 logits)."""
    n = 32
    logits = (torch.randn(1, vocab, device=device) * 3).expand(n, vocab).contiguous()
    uniform = (torch.arange(n, device=device) + 0.5) / n
    args = (logits, *_params(n, temperature, top_k, top_p, device), uniform)
    got = sample(*args)
    assert got.dtype == torch.int64 and got.shape == (n,)
    assert torch.equal(got, reference.sample(*args))


def test_sample_mixed_batch(device):
    """Each row of one batch follows its own temperature, top-k, top-p and draw, as continuous batching needs."""
    logits = torch.randn(6, 300, device=device) * 2
    temperature = torch.tensor([0.0, 1.0, 0.5, 1.5, 1.0, 0.8], device=device)
    top_k = torch.tensor([0, 0, 10, 0, 1, 40], device=device)
    top_p = torch.tensor([1.0, 0.95, 1.0, 0.5, 1.0, 0.7], device=device)
    uniform = torch.rand(6, device=device)
    got = sample(logits, temperature, top_k, top_p, uniform)
    assert torch.equal(got, reference.sample(logits, temperature, top_k, top_p, uniform))
    assert got[0] == logits[0].argmax() and got[4] == logits[4].argmax()  # greedy and top-k = 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sample_tied_low_precision_logits(dtype, device):
    """bf16/fp16 logits, full of exact ties, still give the reference's token: ties are taken in id order."""
    n = 48
    logits = (torch.randn(1, 500, device=device) * 2).to(dtype).expand(n, 500).contiguous()
    assert logits[0].unique().numel() < 500  # the data really has ties
    uniform = (torch.arange(n, device=device) + 0.5) / n
    args = (logits, *_params(n, 1.0, 0, 1.0, device), uniform)
    assert torch.equal(sample(*args), reference.sample(*args))


def test_sample_small_top_p_is_greedy(device):
    """A top-p smaller than the top token's probability always returns that token, whatever the draw."""
    logits = torch.randn(1, 200, device=device).expand(8, 200).contiguous()
    got = sample(logits, *_params(8, 1.0, 0, 1e-6, device), torch.linspace(0, 0.999, 8, device=device))
    assert torch.equal(got, logits.argmax(-1))


def test_sample_on_the_models_vocabulary(device):
    """On the model's 49,152-token vocabulary Triton and the reference draw the same tokens."""
    logits = torch.randn(2, 49152, device=device) * 4
    temperature = torch.tensor([0.7, 1.0], device=device)
    top_k = torch.tensor([0, 50], device=device)
    top_p = torch.tensor([0.9, 1.0], device=device)
    uniform = torch.tensor([0.3, 0.8], device=device)
    args = (logits, temperature, top_k, top_p, uniform)
    assert torch.equal(sample(*args), reference.sample(*args))
