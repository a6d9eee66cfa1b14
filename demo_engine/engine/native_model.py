"""SmolLM2's forward pass on the native CPU path (`native.py`'s kernels), with numpy buffers and no PyTorch.

The Q4_1 blocks as stored (0.625 bytes a weight) against activations quantized to int16 per block of 32, integer dot
products (VNNI where the CPU has it), fp32 activations between the matmuls, and the whole decode step (every block) in
one native call; prompts are prefilled as native steps too (their tokens as rows). The KV cache is bf16 (its 16 bits
in uint16 arrays). The tied head runs natively for any number of rows, over the embedding's own Q8_0 codes
(rearranged in place for the kernel), every logit within 2e-5 of exact. Backend "CPU · q4_1×q16 avx512-vnni" (or
avx2-vnni, avx2).

The same interface as `model.LlamaModel` (what the scheduler calls), so the engine picks one at load time: this one
where the native code runs, the PyTorch model otherwise (`ENGINE_NATIVE_CPU=off`, fp32, CUDA). Without PyTorch in the
process the engine's resident memory is about 250 MB smaller. Token ids in, logits out; knows nothing about text,
sampling or scheduling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from demo_engine.engine import gguf_loader
from demo_engine.engine import native as native_cpu
from demo_engine.engine.gguf_loader import GGUFFile, LlamaConfig
from demo_engine.engine.kv_cache import KVCache

CACHE_DTYPE = np.dtype(np.uint16)  # bf16 bits, as the native decode step reads and writes them


@dataclass
class NativeLayer:
    """One transformer block's weights, as the native decode step reads them."""

    attn_norm: np.ndarray  # (dim,) fp32
    qkv: native_cpu.NativeLinear  # dim -> (Hq + 2 Hk) * D
    out: native_cpu.NativeLinear  # Hq * D -> dim
    ffn_norm: np.ndarray  # (dim,) fp32
    gate_up: native_cpu.NativeLinear  # dim -> 2 * ffn
    down: native_cpu.NativeLinear  # ffn -> dim


class NativeEmbedding:
    """The tied embedding: Q8_0 codes (int8, their columns in the native head's order, see `native.pack_q8_0`) with
    their block scales; rows dequantized on lookup, in natural column order (`positions`: natural column -> its
    position, None when the order is natural)."""

    def __init__(self, codes: np.ndarray, scales: np.ndarray, positions: np.ndarray | None) -> None:
        self.codes = codes  # (V, dim) int8
        self.scales = scales  # (V, dim/32) fp32
        self.positions = positions  # (dim,) int64 or None
        self.vocab_size, self.dim = codes.shape

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """fp32 rows for `ids` (N,) -> (N, dim), exactly the dequantized Q8_0 values."""
        codes = self.codes[ids]  # (N, dim)
        if self.positions is not None:
            codes = codes[:, self.positions]
        blocks = codes.reshape(len(ids), -1, 32).astype(np.float32) * self.scales[ids][..., None]  # (N, dim/32, 32)
        return blocks.reshape(len(ids), self.dim)


class NativeModel:
    """SmolLM2's forward pass on the native kernels. `prefill` one prompt into a cache slot; `decode` one token for
    many slots. Inputs are anything numpy reads as int64 (lists, arrays, CPU tensors); logits are fp32 numpy arrays."""

    mode = "int4"
    device_type = "cpu"
    array_library = "numpy"
    # Prompt tokens a scheduler step prefills of one prompt at a time (two native steps of 64 rows): a row's numbers do
    # not depend on its step, so a chunked prompt gets exactly the logits of a whole one.
    prefill_chunk = 128

    def __init__(
        self,
        config: LlamaConfig,
        native: native_cpu.NativeCPU,
        layers: list[NativeLayer],
        final_norm: np.ndarray,
        embedding: NativeEmbedding,
    ) -> None:
        self.config = config
        self.native = native
        self.layers = layers
        self.embedding = embedding
        self.decoder = native_cpu.NativeDecoder(native, config, layers, final_norm)
        self.head = native_cpu.NativeHead(native, embedding.codes, embedding.scales)

    @classmethod
    def from_gguf(cls, gguf_file: GGUFFile, native: native_cpu.NativeCPU) -> NativeModel:
        """The model's weights from an opened GGUF file (with a progress bar on a terminal), packed for `native`."""
        config = LlamaConfig.from_gguf(gguf_file)
        by_name = {tensor.name: tensor for tensor in gguf_file.tensors()}
        if "output.weight" in by_name:
            raise NotImplementedError("this engine expects tied embeddings (no output.weight)")

        def blocks(name: str) -> np.ndarray:
            return gguf_loader.q4_1_blocks(by_name[name])

        def linear(names: list[str], n_in: int, heads: list[int | None] | None = None) -> native_cpu.NativeLinear:
            parts = [
                blocks(name) if n is None else gguf_loader.unpermute_rows(blocks(name), n)
                for name, n in zip(names, heads or [None] * len(names), strict=True)
            ]
            return native_cpu.NativeLinear(native, np.concatenate(parts), n_in)

        def norm(name: str) -> np.ndarray:
            return np.ascontiguousarray(gguf_loader.f32_tensor(by_name[name]), dtype=np.float32)

        layers = []
        dim, ffn = config.dim, config.ffn_dim
        for index in gguf_loader.progress(list(range(config.n_layers)), "loading SmolLM2"):
            p = f"blk.{index}."
            layers.append(
                NativeLayer(
                    attn_norm=norm(p + "attn_norm.weight"),
                    qkv=linear(
                        [p + "attn_q.weight", p + "attn_k.weight", p + "attn_v.weight"],
                        dim,
                        [config.n_heads, config.n_kv_heads, None],
                    ),
                    out=linear([p + "attn_output.weight"], dim),
                    ffn_norm=norm(p + "ffn_norm.weight"),
                    gate_up=linear([p + "ffn_gate.weight", p + "ffn_up.weight"], dim),
                    down=linear([p + "ffn_down.weight"], ffn),
                )
            )
        codes, scales = gguf_loader.q8_0_unpack(by_name["token_embd.weight"])
        # The head runs natively over the embedding's own codes, rearranged in place for the kernel: no copy.
        positions = native_cpu.pack_q8_0(native, codes)
        return cls(config, native, layers, norm("output_norm.weight"), NativeEmbedding(codes, scales, positions))

    @property
    def kernel_label(self) -> str:
        """What runs, for the per-request figures: "CPU · q4_1×q16 avx512-vnni"."""
        return f"CPU · q4_1×q16 {self.native.isa}"

    def new_cache(self, num_slots: int, max_len: int) -> KVCache:
        """An empty bf16 KV cache (numpy, uint16 bits)."""
        c = self.config
        return KVCache(c.n_layers, num_slots, c.n_kv_heads, max_len, c.head_dim, CACHE_DTYPE)

    # --- what the scheduler needs besides the forward ------------------------------------------------------

    @staticmethod
    def ids(values: Sequence[int]) -> np.ndarray:
        """Token ids, slots or positions as the model takes them: (N,) int64."""
        return np.asarray(values, dtype=np.int64)

    @staticmethod
    def inference_mode() -> contextlib.AbstractContextManager:
        """Nothing to switch off: no autograd here."""
        return contextlib.nullcontext()

    def use_threads(self, threads: int) -> None:
        """The native code has its own pool (sized at load time): nothing to set in the scheduler's thread."""

    # --- forward -------------------------------------------------------------------------------------------

    def prefill(self, token_ids, cache: KVCache, slot: int, *, start: int = 0, all_logits: bool = False) -> np.ndarray:
        """Run prompt tokens (T,) into cache slot `slot` at positions start..start+T-1 (positions 0..start-1 already
        hold a shared prefix). Returns fp32 logits (T, V) with `all_logits`, else only the last position's (1, V)."""
        hidden = self._prompts_forward([token_ids], cache, [slot], [start])  # (T, dim)
        return self.head(hidden if all_logits else hidden[-1:])

    def prefill_many(self, prompts: list, cache: KVCache, slots: list[int], starts: list[int]) -> np.ndarray:
        """`prefill` for several prompts in one pass; each prompt's last-position logits (N, V)."""
        hidden = self._prompts_forward(prompts, cache, slots, starts)  # (sum T, dim)
        last = np.cumsum([len(p) for p in prompts]) - 1
        return self.head(hidden[last])

    def _prompts_forward(self, prompts: list, cache: KVCache, slots: list[int], starts: list[int]) -> np.ndarray:
        """The prompts' tokens as rows of native decode steps, up to `native.MAX_BATCH` rows a step, row i at its own
        slot and position. A step writes every row's K and V before its attention, and attention covers positions
        0..position of the row's slot, so the rows of one prompt in one step attend causally, and a later step's rows
        see the earlier ones in the cache: exactly the decode step's arithmetic. Final hidden states (sum T, dim)."""
        prompts = [self.ids(p) for p in prompts]
        for prompt, start in zip(prompts, starts, strict=True):
            if start + len(prompt) > cache.max_len:
                raise ValueError(f"prompt of {start + len(prompt)} tokens exceeds the cache length {cache.max_len}")
        ids = np.concatenate(prompts)  # (sum T,)
        row_slots = np.concatenate([np.full(len(p), s, dtype=np.int64) for p, s in zip(prompts, slots, strict=True)])
        positions = np.concatenate(
            [np.arange(s, s + len(p), dtype=np.int64) for p, s in zip(prompts, starts, strict=True)]
        )
        return self._steps(ids, cache, row_slots, positions)

    def _steps(self, ids: np.ndarray, cache: KVCache, slots: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Rows (token id, slot, position) through native decode steps of up to `native.MAX_BATCH` rows; each row's
        final-normed hidden state (N, dim). Rows are independent through every kernel."""
        rows = native_cpu.MAX_BATCH
        return np.concatenate(
            [
                self.decoder.step(
                    self.embedding.rows(ids[i : i + rows]), cache, slots[i : i + rows], positions[i : i + rows]
                )  # fmt: skip
                for i in range(0, len(ids), rows)
            ]
        )

    def decode(self, token_ids, cache: KVCache, slots, positions, attention_span: int | None = None) -> np.ndarray:
        """One new token for each of B sequences: token_ids, slots, positions (B,) -> fp32 logits (B, V). Token i's K
        and V are written at `positions[i]`, and attention covers positions 0..positions[i] of its slot. Batches
        above `native.MAX_BATCH` rows run as several steps (rows are independent)."""
        return self.head(self._steps(self.ids(token_ids), cache, self.ids(slots), self.ids(positions)))
