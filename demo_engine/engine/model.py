"""The Llama forward pass of SmolLM2-135M in PyTorch: weights from the GGUF, prefill and batched decode.

Every path but the CPU's native one (`native_model.py`, which runs without PyTorch and is picked where its kernels
build): the exact fp32 path, PyTorch's int4 kernel on the CPU, and the CUDA paths.

Token ids in, logits out; the KV cache is passed in. Knows nothing about text, chat turns, sampling or
scheduling. The hot-path operations (RMSNorm with residual, rotary, decode attention, SwiGLU, the 4-bit
matmul on CUDA) go through `kernels.dispatch`, which runs Triton on CUDA tensors and plain PyTorch on the CPU.

Four weight formats, picked at load time:

- `fp32`: every weight dequantized to fp32, exactly as `transformers` does; the reference path.
- `int4` on the CPU without the native code (no compiler, no AVX2, or `ENGINE_NATIVE_CPU=off`): the Q4_1 blocks
  repacked for `_weight_int4pack_mm_for_cpu` (groups of 32, the same 4-bit codes; scale d and zero m + 8d in bf16),
  bf16 activations, an fp32 residual stream. About 60 MB of weights read per token against 538 MB in fp32.
  Its tied head is int8 per row (28 MB), multiplied by int8 activations (per row) in one int8 GEMM; the top 16
  candidates of each row are then recomputed exactly from the Q8_0 embedding, so greedy picks are those of the exact
  head. The other logits are within about 1.3 of exact (mean 0.14), which only the far tail of a sampled distribution
  sees.
- `q4_1` (CUDA): the blocks as stored, multiplied by `dispatch.q4_1_matmul`.
- `bf16` (CUDA, the GPU benchmark's baseline): every weight dequantized once to dense bf16, multiplied by cuBLAS
  (`F.linear`), decode attention by PyTorch's `scaled_dot_product_attention`; run it under
  `dispatch.use_backend("torch")` for PyTorch's own RMSNorm, rotary and SwiGLU too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from demo_engine.engine import gguf_loader
from demo_engine.engine.gguf_loader import GGUFFile, LlamaConfig
from demo_engine.engine.kv_cache import KVCache
from kernels import dispatch

INT4_GROUP = 32  # the Q4_1 block size; `_weight_int4pack_mm_for_cpu` accepts it as its group size
HEAD_REFINE_TOP = 16  # candidates per row whose logits are recomputed exactly from the Q8_0 embedding


# --- linear layers ------------------------------------------------------------------------------------


class DenseLinear:
    """y = x @ W.T with a dense weight (fp32 on the reference path)."""

    kernel = "dense"

    def __init__(self, weight: torch.Tensor) -> None:
        self.weight = weight  # (N, K)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class Int4PackedLinear:
    """Q4_1 weights repacked for PyTorch's AVX2 int4 kernel; bf16 in, bf16 out.

    Q4_1 gives w = d*q + m with q in 0..15; the kernel computes w = (q - 8) * scale + zero, so
    scale = d and zero = m + 8d over the same groups of 32: the codes are carried over unchanged.
    """

    kernel = "int4pack"

    def __init__(self, codes: torch.Tensor, d: torch.Tensor, m: torch.Tensor) -> None:
        # codes (N, K) uint8; d, m (N, K/32) fp32
        self.n_out, self.n_in = codes.shape
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), 1)
        self.scales_zeros = (
            torch.stack([d, m + 8 * d], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
        )  # (K/32, N, 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.reshape(-1, self.n_in), self.packed, INT4_GROUP, self.scales_zeros
        )  # (M, N)
        return y.view(*lead, self.n_out)


class Q4_1BlockLinear:
    """The Q4_1 blocks as stored, multiplied by `dispatch.q4_1_matmul` (Triton on CUDA)."""

    kernel = "q4_1"

    def __init__(self, blocks: torch.Tensor, n_in: int) -> None:
        self.blocks = blocks  # (N, K/32*20) uint8
        self.n_out, self.n_in = blocks.shape[0], n_in

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = dispatch.q4_1_matmul(x.reshape(-1, self.n_in), self.blocks, self.n_out, self.n_in)  # (M, N)
        return y.to(x.dtype).view(*lead, self.n_out)


Linear = DenseLinear | Int4PackedLinear | Q4_1BlockLinear


def _make_linear(blocks: list[np.ndarray], n_in: int, mode: str, device: str) -> Linear:
    """One linear layer from Q4_1 blocks of one or more weights stacked along the outputs (q|k|v)."""
    stacked = np.concatenate(blocks)  # (N, K/32*20)
    if mode == "fp32":
        return DenseLinear(torch.from_numpy(gguf_loader.q4_1_dequantize(stacked)).to(device))
    if mode == "bf16":
        return DenseLinear(torch.from_numpy(gguf_loader.q4_1_dequantize(stacked)).to(device, torch.bfloat16))
    if mode == "int4":
        codes, d, m = (torch.from_numpy(part) for part in gguf_loader.q4_1_unpack(stacked))
        return Int4PackedLinear(codes, d, m)
    return Q4_1BlockLinear(torch.from_numpy(stacked).to(device), n_in)


@dataclass
class LayerWeights:
    """One transformer block."""

    attn_norm: torch.Tensor  # (dim,)
    qkv: Linear  # dim -> (Hq + 2 Hk) * D
    out: Linear  # Hq * D -> dim
    ffn_norm: torch.Tensor  # (dim,)
    gate_up: Linear  # dim -> 2 * ffn
    down: Linear  # ffn -> dim


class TokenEmbedding:
    """The tied embedding: Q8_0 codes kept as int8 with their block scales; rows dequantized on lookup."""

    def __init__(self, codes: torch.Tensor, scales: torch.Tensor) -> None:
        self.codes = codes  # (V, dim) int8
        self.scales = scales  # (V, dim/32) fp32
        self.vocab_size, self.dim = codes.shape

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """fp32 rows for `ids` (...,) -> (..., dim), exactly the dequantized Q8_0 values."""
        codes = self.codes[ids].float()  # (..., dim)
        scales = self.scales[ids]  # (..., dim/32)
        return (codes.unflatten(-1, (-1, 32)) * scales[..., None]).flatten(-2)

    def dense(self) -> torch.Tensor:
        """The whole table in fp32 (V, dim)."""
        return self.rows(torch.arange(self.vocab_size))


def _int8_rows(embedding: TokenEmbedding, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding requantized to int8 with one scale per row, for the int8 GEMM of the head: (V, dim), (V,) fp32.

    Done 1,024 rows at a time: the whole table in fp32 would be a 113 MB transient (three of them, counting the
    intermediate results); chunks of 4,096 rows put the load's peak RSS at 430 MB, chunks of 1,024 at 399.
    """
    codes = torch.empty_like(embedding.codes)  # (V, dim) int8
    scales = torch.empty(embedding.vocab_size, dtype=torch.float32)
    for start in range(0, embedding.vocab_size, chunk):
        rows = embedding.rows(torch.arange(start, min(start + chunk, embedding.vocab_size)))  # (chunk, dim) fp32
        row_scale = rows.abs().amax(dim=1).clamp(min=1e-8) / 127  # (chunk,)
        codes[start : start + chunk] = torch.round(rows / row_scale[:, None]).to(torch.int8)
        scales[start : start + chunk] = row_scale
    return codes, scales


class LlamaModel:
    """SmolLM2's forward pass. `prefill` one prompt into a cache slot; `decode` one token for many slots."""

    array_library = "torch"
    # A prompt is prefilled whole (None): PyTorch's kernels (its int4 matmul, SDPA over the prompt) are not known to
    # round a row alike in forwards of other lengths, so a chunked prompt might not get a whole one's logits.
    prefill_chunk: int | None = None

    def __init__(self, config: LlamaConfig, mode: str, device: str = "cpu") -> None:
        if mode not in ("fp32", "int4", "q4_1", "bf16"):
            raise ValueError(f"unknown weight mode {mode!r}")
        self.config = config
        self.mode = mode
        self.device = torch.device(device)
        # Activations: bf16 feeds PyTorch's int4 kernel's AVX2 path (fp32 activations fall back to a path 8x slower).
        self.act_dtype = torch.float32 if mode == "fp32" else torch.bfloat16
        self.cache_dtype = torch.float32 if mode == "fp32" else torch.bfloat16
        self.layers: list[LayerWeights] = []
        self.final_norm = torch.empty(0)
        self.embedding: TokenEmbedding | None = None
        self.head_weight = torch.empty(0)
        self.head_int8: tuple[torch.Tensor, torch.Tensor] | None = None
        self.scale = config.head_dim**-0.5
        inv_freq = 1.0 / (
            config.rope_base ** (torch.arange(0, config.head_dim, 2, dtype=torch.float32) / config.head_dim)
        )
        self._inv_freq = inv_freq.to(self.device)  # (D/2,)

    # --- loading ---------------------------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, gguf_file: GGUFFile, mode: str, device: str = "cpu") -> LlamaModel:
        """Build the model's weights from an opened GGUF file (with a progress bar on a terminal)."""
        config = LlamaConfig.from_gguf(gguf_file)
        model = cls(config, mode, device)
        by_name = {tensor.name: tensor for tensor in gguf_file.tensors()}
        dim, ffn = config.dim, config.ffn_dim

        def blocks(name: str) -> np.ndarray:
            return gguf_loader.q4_1_blocks(by_name[name])

        def norm(name: str) -> torch.Tensor:
            return torch.from_numpy(gguf_loader.f32_tensor(by_name[name])).to(model.device)

        for index in gguf_loader.progress(list(range(config.n_layers)), "loading SmolLM2"):
            p = f"blk.{index}."
            q = gguf_loader.unpermute_rows(blocks(p + "attn_q.weight"), config.n_heads)
            k = gguf_loader.unpermute_rows(blocks(p + "attn_k.weight"), config.n_kv_heads)
            model.layers.append(
                LayerWeights(
                    attn_norm=norm(p + "attn_norm.weight"),
                    qkv=_make_linear([q, k, blocks(p + "attn_v.weight")], dim, mode, device),
                    out=_make_linear([blocks(p + "attn_output.weight")], dim, mode, device),
                    ffn_norm=norm(p + "ffn_norm.weight"),
                    gate_up=_make_linear(
                        [blocks(p + "ffn_gate.weight"), blocks(p + "ffn_up.weight")], dim, mode, device
                    ),
                    down=_make_linear([blocks(p + "ffn_down.weight")], ffn, mode, device),
                )
            )
        model.final_norm = norm("output_norm.weight")
        codes, scales = gguf_loader.q8_0_unpack(by_name["token_embd.weight"])
        if "output.weight" in by_name:
            raise NotImplementedError("this engine expects tied embeddings (no output.weight)")
        model.embedding = TokenEmbedding(
            torch.from_numpy(codes).to(model.device), torch.from_numpy(scales).to(model.device)
        )
        if mode == "fp32":
            model.head_weight = model.embedding.dense()  # (V, dim)
        elif mode == "int4":
            model.head_int8 = _int8_rows(model.embedding)
        elif mode != "int4":
            model.head_weight = model.embedding.dense().to(model.device, torch.bfloat16)
        return model

    @property
    def kernel_label(self) -> str:
        """What ran, for the per-request figures: e.g. "CPU · int4 bf16", "GPU · Triton", "CPU · fp32"."""
        if self.mode == "fp32":
            return f"{'GPU' if self.device.type == 'cuda' else 'CPU'} · fp32"
        probe = torch.empty(0, device=self.device)
        if self.mode == "bf16":
            ops = "PyTorch" if dispatch.backend_for(probe) == "torch" else "Triton"
            return f"{'GPU' if self.device.type == 'cuda' else 'CPU'} · bf16 dense {ops}"
        if dispatch.backend_for(probe) == "triton":
            return "GPU · Triton"
        if self.mode == "int4":
            return "CPU · int4 bf16"
        return f"{self.device.type.upper()} · q4_1 {dispatch.backend_for(probe)}"

    def new_cache(self, num_slots: int, max_len: int) -> KVCache:
        """An empty KV cache in this model's activation dtype."""
        c = self.config
        return KVCache(c.n_layers, num_slots, c.n_kv_heads, max_len, c.head_dim, self.cache_dtype, self.device)

    # --- what the scheduler needs besides the forward (see native_model.NativeModel for the native path's) ------

    @property
    def device_type(self) -> str:
        """ "cpu" or "cuda"."""
        return self.device.type

    def ids(self, values: Sequence[int]) -> torch.Tensor:
        """Token ids, slots or positions as the model takes them: (N,) int64 on the model's device."""
        return torch.tensor(values, dtype=torch.int64, device=self.device)

    @staticmethod
    def inference_mode() -> torch.inference_mode:
        """The context of a scheduler step: no autograd bookkeeping."""
        return torch.inference_mode()

    @staticmethod
    def use_threads(threads: int) -> None:
        """Size the calling thread's PyTorch team (the intra-op setting is per OS thread under OpenMP)."""
        torch.set_num_threads(threads)

    # --- forward ---------------------------------------------------------------------------------------

    def _rotary(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for positions (B, T) -> (B, T, D/2) fp32, as transformers computes them."""
        freqs = positions.to(torch.float32)[..., None] * self._inv_freq  # (B, T, D/2)
        return freqs.cos(), freqs.sin()

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """Final hidden (M, dim) in the activation dtype -> fp32 logits (M, V)."""
        if self.mode == "fp32":
            return F.linear(x, self.head_weight)
        if self.head_int8 is None:
            return F.linear(x, self.head_weight).float()
        q8, row_scale = self.head_int8
        # Activations to int8 per row too, and one int8 x int8 GEMM (oneDNN's VNNI path): 1.6 ms at one row and
        # 5 ms at sixteen, where `_weight_int8pack_mm` (bf16 activations) took 3.2 and 21 ms, a quarter of a
        # batch-16 decode step. Rows stay independent of each other.
        scale = x.float().abs().amax(dim=-1, keepdim=True).clamp_(min=1e-10).div_(127.0)  # (M, 1)
        codes = torch.round(x.float() / scale).to(torch.int8)  # (M, dim)
        logits = torch._int_mm(codes, q8.t()).float().mul_(scale).mul_(row_scale)  # (M, V)
        # Recompute the best few exactly: the approximate head's error (mean 0.14, at most about 1.3) is far
        # smaller than the usual gap to the 16th candidate (about 6), so the argmax over exact values is the
        # argmax of the exact head.
        top = logits.topk(HEAD_REFINE_TOP, dim=-1).indices  # (M, k)
        exact = torch.einsum("md,mkd->mk", x.float(), self.embedding.rows(top))  # (M, k)
        return logits.scatter_(1, top, exact)

    def _embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.embedding.rows(token_ids)  # (..., dim) fp32

    def prefill(
        self, token_ids: torch.Tensor, cache: KVCache, slot: int, *, start: int = 0, all_logits: bool = False
    ) -> torch.Tensor:
        """Run prompt tokens (T,) into cache slot `slot` at positions start..start+T-1.

        With `start` > 0 the slot already holds positions 0..start-1 (a shared prefix, see the scheduler), and
        the new tokens attend to those as well as to each other. Returns fp32 logits (T, V) with `all_logits`,
        else only the last position's (1, V).
        """
        hidden = self._prompts_forward([token_ids], cache, [slot], [start])  # (T, dim)
        return self._head(hidden if all_logits else hidden[-1:])

    def prefill_many(
        self, prompts: list[torch.Tensor], cache: KVCache, slots: list[int], starts: list[int]
    ) -> torch.Tensor:
        """`prefill` for several prompts in one forward pass: their tokens share every matmul (the weights are read
        once for all of them), attention runs per prompt. Returns each prompt's last-position logits (N, V)."""
        hidden = self._prompts_forward(prompts, cache, slots, starts)  # (sum T, dim)
        last = torch.tensor([len(p) for p in prompts], device=self.device).cumsum(0) - 1
        return self._head(hidden[last])

    def _prompts_forward(
        self, prompts: list[torch.Tensor], cache: KVCache, slots: list[int], starts: list[int]
    ) -> torch.Tensor:
        """The blocks over prompts (T_i,) written into their slots from positions starts[i]; the final hidden
        states of all their tokens, concatenated (sum T, dim). Rows are independent through every matmul, so a
        prompt's numbers do not depend on the others."""
        c = self.config
        spans = []  # (row offset, tokens, slot, start, visible) per prompt
        offset = 0
        for prompt, slot, start in zip(prompts, slots, starts, strict=True):
            n_tokens, end = len(prompt), start + len(prompt)
            if end > cache.max_len:
                raise ValueError(f"prompt of {end} tokens exceeds the cache length {cache.max_len}")
            # After a cached prefix, query i (position start + i) may see keys 0..start + i.
            visible = torch.ones(n_tokens, end, dtype=torch.bool, device=self.device).tril(start) if start else None
            spans.append((offset, n_tokens, slot, start, visible))
            offset += n_tokens
        total = offset
        positions = torch.cat([torch.arange(start, start + n) for _o, n, _s, start, _v in spans]).to(self.device)[None]
        cos, sin = self._rotary(positions)  # (1, sum T, D/2)
        residual = self._embed(torch.cat(prompts).to(self.device))[None]  # (1, sum T, dim) fp32
        x, residual = dispatch.rms_norm(residual, self.layers[0].attn_norm, c.norm_eps)
        x = x.to(self.act_dtype)
        for index, layer in enumerate(self.layers):
            qkv = layer.qkv(x)  # (1, sum T, (Hq + 2Hk) D)
            q, k, v = qkv.split([c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim], -1)
            q = q.reshape(1, total, c.n_heads, c.head_dim)  # (1, sum T, Hq, D)
            k = k.reshape(1, total, c.n_kv_heads, c.head_dim)  # (1, sum T, Hk, D)
            v = v.reshape(1, total, c.n_kv_heads, c.head_dim)
            dispatch.apply_rotary(q, k, cos, sin)
            k_cache, v_cache = cache.layer(index)
            attn = torch.cat(
                [self._prompt_attention(q, k, v, k_cache, v_cache, span) for span in spans], dim=2
            )  # (1, Hq, sum T, D)
            h = layer.out(attn.transpose(1, 2).reshape(1, total, c.dim))  # (1, sum T, dim)
            x, residual = dispatch.rms_norm(h, layer.ffn_norm, c.norm_eps, residual)
            gate, up = layer.gate_up(x).chunk(2, dim=-1)  # (1, sum T, ffn) each
            h = layer.down(dispatch.swiglu(gate, up))  # (1, sum T, dim)
            norm_weight = self.layers[index + 1].attn_norm if index + 1 < len(self.layers) else self.final_norm
            x, residual = dispatch.rms_norm(h, norm_weight, c.norm_eps, residual)
        return x[0]

    def _prompt_attention(self, q, k, v, k_cache, v_cache, span: tuple) -> torch.Tensor:
        """One prompt's rows of q, k, v (1, sum T, H, D): write its K and V into its slot, then causal attention
        over its cached prefix and itself. Returns (1, Hq, T, D)."""
        offset, n_tokens, slot, start, visible = span
        end = start + n_tokens
        q, k, v = q[:, offset : offset + n_tokens], k[:, offset : offset + n_tokens], v[:, offset : offset + n_tokens]
        k_cache[slot, :, start:end] = k[0].transpose(0, 1)  # (Hk, T, D)
        v_cache[slot, :, start:end] = v[0].transpose(0, 1)
        if not start:
            return F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=self.scale,
                enable_gqa=True,
            )  # fmt: skip
        return F.scaled_dot_product_attention(
            q.transpose(1, 2), k_cache[slot, :, :end][None].to(q.dtype), v_cache[slot, :, :end][None].to(q.dtype),
            attn_mask=visible, scale=self.scale, enable_gqa=True,
        )  # fmt: skip

    def decode(
        self,
        token_ids: torch.Tensor,
        cache: KVCache,
        slots: torch.Tensor,
        positions: torch.Tensor,
        attention_span: int | None = None,
    ) -> torch.Tensor:
        """One new token for each of B sequences: token_ids, slots, positions (B,) -> fp32 logits (B, V).

        `positions[i]` is where token i sits (its sequence's length before it); its K and V are written
        there, and attention covers positions 0..positions[i]. `attention_span` (the CUDA graphs pass the cache
        length) fixes how many cache positions attention is handed, instead of reading the longest sequence's
        length back from the device: no host sync inside the step.
        """
        c = self.config
        batch = token_ids.shape[0]
        seq_lens = (positions + 1).to(torch.int32)  # (B,)
        # Attention reads only up to the longest sequence in the batch, not the whole cache length.
        span = int(seq_lens.max()) if attention_span is None else attention_span
        cos, sin = self._rotary(positions[:, None])  # (B, 1, D/2)
        residual = self._embed(token_ids)  # (B, dim) fp32
        x, residual = dispatch.rms_norm(residual, self.layers[0].attn_norm, c.norm_eps)
        x = x.to(self.act_dtype)
        q_width, kv_width = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
        for index, layer in enumerate(self.layers):
            qkv = layer.qkv(x)  # (B, (Hq + 2Hk) D)
            q, k, v = qkv.split([q_width, kv_width, kv_width], -1)
            q = q.reshape(batch, 1, c.n_heads, c.head_dim)  # (B, 1, Hq, D)
            k = k.reshape(batch, 1, c.n_kv_heads, c.head_dim)  # (B, 1, Hk, D)
            dispatch.apply_rotary(q, k, cos, sin)
            k_cache, v_cache = cache.layer(index)
            k_cache[slots, :, positions] = k[:, 0].to(k_cache.dtype)  # (B, Hk, D)
            v_cache[slots, :, positions] = v.reshape(batch, c.n_kv_heads, c.head_dim).to(v_cache.dtype)
            attn = self._decode_attention(q[:, 0], k_cache[:, :, :span], v_cache[:, :, :span], slots, seq_lens)
            h = layer.out(attn.reshape(batch, c.dim))  # (B, dim)
            x, residual = dispatch.rms_norm(h, layer.ffn_norm, c.norm_eps, residual)
            gate, up = layer.gate_up(x).chunk(2, dim=-1)  # (B, ffn) each
            h = layer.down(dispatch.swiglu(gate, up))  # (B, dim)
            norm_weight = self.layers[index + 1].attn_norm if index + 1 < len(self.layers) else self.final_norm
            x, residual = dispatch.rms_norm(h, norm_weight, c.norm_eps, residual)
        return self._head(x)

    def _decode_attention(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slots: torch.Tensor, seq_lens: torch.Tensor
    ) -> torch.Tensor:
        """(B, Hq, D) attention of each new token over its slot; k_cache, v_cache (slots, Hk, S, D). The `bf16`
        baseline uses PyTorch's SDPA on the gathered slots (what a plain PyTorch engine does), every other mode
        `dispatch.decode_attention`."""
        if self.mode != "bf16":
            return dispatch.decode_attention(q, k_cache, v_cache, slots, seq_lens, self.scale)
        span = k_cache.shape[2]
        visible = torch.arange(span, device=q.device)[None, :] < seq_lens[:, None]  # (B, S)
        out = F.scaled_dot_product_attention(
            q[:, :, None], k_cache[slots].to(q.dtype), v_cache[slots].to(q.dtype), attn_mask=visible[:, None, None, :],
            scale=self.scale, enable_gqa=True,
        )  # fmt: skip
        return out[:, :, 0]  # (B, Hq, D)
