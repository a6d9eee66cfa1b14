"""The whole forward with our Triton kernels (in Triton's interpreter without CUDA, on the GPU with it; a tiny
random model of SmolLM2's architecture: grouped-query attention, Q4_1 blocks as stored, tied Q8_0 embedding) gives
the logits of the same forward on the PyTorch references. This is what makes the GPU path trustworthy before a GPU
ever runs it."""

import pytest
import torch

from demo_engine.engine.model import LayerWeights, LlamaConfig, LlamaModel, Q4_1BlockLinear, TokenEmbedding
from kernels import dispatch

TINY = LlamaConfig(n_layers=2, dim=96, ffn_dim=128, n_heads=3, n_kv_heads=1, head_dim=32, vocab_size=101,
                   context_length=64)  # fmt: skip


def random_q4_1_blocks(n_out: int, n_in: int, generator: torch.Generator) -> torch.Tensor:
    """GGUF Q4_1 blocks (fp16 scale, fp16 min, 16 bytes of nibbles per 32 weights) with sane random values."""
    n_blocks = n_in // 32
    scale = (torch.rand(n_out, n_blocks, generator=generator) * 0.02 + 0.005).to(torch.float16)
    minimum = (torch.randn(n_out, n_blocks, generator=generator) * 0.05).to(torch.float16)
    nibbles = torch.randint(0, 256, (n_out, n_blocks, 16), generator=generator, dtype=torch.uint8)
    header = torch.cat(
        [scale.view(torch.uint8).view(n_out, n_blocks, 2), minimum.view(torch.uint8).view(n_out, n_blocks, 2)], -1
    )
    return torch.cat([header, nibbles], -1).reshape(n_out, n_blocks * 20)


def tiny_model(act_dtype: torch.dtype, device: str = "cpu") -> LlamaModel:
    generator = torch.Generator().manual_seed(0)
    c = TINY
    model = LlamaModel(c, "q4_1", device)
    model.act_dtype = act_dtype
    qkv_out = (c.n_heads + 2 * c.n_kv_heads) * c.head_dim

    def norm() -> torch.Tensor:
        return 1 + 0.1 * torch.randn(c.dim, generator=generator)

    for _ in range(c.n_layers):
        model.layers.append(
            LayerWeights(
                attn_norm=norm(),
                qkv=Q4_1BlockLinear(random_q4_1_blocks(qkv_out, c.dim, generator), c.dim),
                out=Q4_1BlockLinear(random_q4_1_blocks(c.dim, c.dim, generator), c.dim),
                ffn_norm=norm(),
                gate_up=Q4_1BlockLinear(random_q4_1_blocks(2 * c.ffn_dim, c.dim, generator), c.dim),
                down=Q4_1BlockLinear(random_q4_1_blocks(c.dim, c.ffn_dim, generator), c.ffn_dim),
            )
        )
    model.final_norm = norm()
    codes = torch.randint(-127, 128, (c.vocab_size, c.dim), generator=generator, dtype=torch.int8)
    model.embedding = TokenEmbedding(codes, torch.full((c.vocab_size, c.dim // 32), 0.01))
    model.head_weight = model.embedding.dense().to(act_dtype)
    if device != "cpu":
        for layer in model.layers:
            layer.attn_norm, layer.ffn_norm = layer.attn_norm.to(device), layer.ffn_norm.to(device)
            for linear in (layer.qkv, layer.out, layer.gate_up, layer.down):
                linear.blocks = linear.blocks.to(device)
        model.final_norm = model.final_norm.to(device)
        model.embedding = TokenEmbedding(codes.to(device), model.embedding.scales.to(device))
        model.head_weight = model.head_weight.to(device)
    return model


def run_forward(model: LlamaModel, backend: str) -> torch.Tensor:
    """Prefill a 7-token prompt into slot 1, then decode 3 tokens for it and a 1-token sequence in slot 0."""
    cache = model.new_cache(num_slots=2, max_len=16)
    device = model.device
    prompt = torch.tensor([5, 17, 3, 99, 42, 8, 61], device=device)
    with dispatch.use_backend(backend):
        logits = [model.prefill(prompt, cache, slot=1, all_logits=True)]
        logits.append(model.prefill(torch.tensor([7], device=device), cache, slot=0, all_logits=True))
        lengths = torch.tensor([1, len(prompt)], device=device)
        for token in ([11, 23], [4, 77], [90, 2]):
            slots = torch.tensor([0, 1], device=device)
            logits.append(model.decode(torch.tensor(token, device=device), cache, slots, lengths))
            lengths = lengths + 1
    return torch.cat(logits).cpu()


@pytest.mark.slow
# bf16: Triton's interpreter truncates fp32 to bf16 where a GPU rounds to nearest, a bias that every bf16 store
# adds to; over two blocks it reaches about 0.6 on logits up to 20 (bf16 itself moves them 0.2 from fp32).
@pytest.mark.parametrize(
    ("act_dtype", "atol", "argmax_agreement"), [(torch.float32, 2e-3, 1.0), (torch.bfloat16, 0.75, 0.95)]
)
def test_engine_forward_with_triton_kernels_equals_references(act_dtype, atol, argmax_agreement, triton_device):
    """Prefill and batched decode logits agree between the Triton kernels and the references, and the greedy
    choice at every position is the same."""
    model = tiny_model(act_dtype, triton_device)
    reference = run_forward(model, "torch")
    triton = run_forward(model, "triton")
    assert reference.shape == (7 + 1 + 6, TINY.vocab_size)
    assert reference.abs().max() > 1, "the tiny model's logits must not be trivially small"
    torch.testing.assert_close(triton, reference, atol=atol, rtol=0.02)
    agreement = (triton.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert agreement >= argmax_agreement
