"""The KV cache: per layer, K and V arrays of shape (num_slots, Hk, max_len, D), one slot per live request.

A slot is handed to a request when it is admitted and returned the moment it finishes or is cancelled.
Knows nothing about the model's weights or about requests beyond their slot number. The arrays are numpy arrays for
the native CPU path (bf16 kept as its 16 bits, uint16: numpy has no bf16) and torch tensors for the torch paths,
which alone import PyTorch.
"""

from __future__ import annotations

import math
import mmap

import numpy as np


def _lazy_zeros(shape: tuple[int, ...], itemsize: int) -> mmap.mmap:
    """Zeroed memory for `shape` whose pages are only made resident when written.

    An anonymous mmap gives zero pages on first touch, in 4 KB pages. Not numpy's calloc: numpy advises huge
    pages for large arrays, and with 2 MB pages a few tokens in each of 16 slots made all 754 MB resident.
    """
    return mmap.mmap(-1, math.prod(shape) * itemsize)


def _zeros(shape: tuple[int, ...], dtype, device):
    """A zeroed array: numpy for a numpy dtype, else a torch tensor (on the CPU over a lazily resident map too)."""
    if isinstance(dtype, np.dtype):
        return np.frombuffer(_lazy_zeros(shape, dtype.itemsize), dtype=dtype).reshape(shape)
    import torch

    if torch.device(device).type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    buffer = _lazy_zeros(shape, torch.empty((), dtype=dtype).element_size())
    return torch.frombuffer(buffer, dtype=dtype, count=math.prod(shape)).view(shape)


def _copy(array):
    """A copy of a numpy array or torch tensor (a slice of the cache)."""
    return array.copy() if isinstance(array, np.ndarray) else array.clone()


class KVCache:
    """K and V for every layer, and a free list of slots.

    On the CPU the arrays are anonymous memory maps, whose pages stay unmapped until written, so resident
    memory grows with the tokens actually held, not with `num_slots * max_len` (16 slots of 2048 positions
    are 754 MB in bf16; `torch.zeros` writes them all).
    Zeros, not garbage, matter: a masked position still meets a 0 weight in attention, and 0 * NaN is NaN.
    `dtype`: a numpy dtype for numpy arrays (the native path), else a torch dtype.
    """

    def __init__(
        self,
        n_layers: int,
        num_slots: int,
        n_kv_heads: int,
        max_len: int,
        head_dim: int,
        dtype,
        device="cpu",
    ) -> None:
        self.n_layers = n_layers
        self.num_slots = num_slots
        self.max_len = max_len
        shape = (num_slots, n_kv_heads, max_len, head_dim)
        self._k = [_zeros(shape, dtype, device) for _ in range(n_layers)]
        self._v = [_zeros(shape, dtype, device) for _ in range(n_layers)]
        self._free = list(range(num_slots - 1, -1, -1))  # pop() hands out slot 0 first

    def layer(self, index: int):
        """(k_cache, v_cache) of one layer, each (num_slots, Hk, max_len, D)."""
        return self._k[index], self._v[index]

    @property
    def free_slots(self) -> int:
        """How many more requests fit."""
        return len(self._free)

    def allocate(self) -> int:
        """Take a free slot; raises IndexError when all are in use."""
        return self._free.pop()

    def release(self, slot: int) -> None:
        """Give a slot back. Its stale contents are harmless: attention only reads positions below seq_len."""
        if slot in self._free:
            raise ValueError(f"slot {slot} released twice")
        self._free.append(slot)

    def read_prefix(self, slot: int, length: int) -> list[tuple]:
        """Copies of positions 0..length-1 of a slot, per layer: (k, v), each (Hk, length, D)."""
        layers = zip(self._k, self._v, strict=True)
        return [(_copy(k[slot, :, :length]), _copy(v[slot, :, :length])) for k, v in layers]

    def write_prefix(self, slot: int, prefix: list[tuple]) -> None:
        """Put a prefix read by `read_prefix` at positions 0.. of a slot."""
        for layer, (k, v) in enumerate(prefix):
            self._k[layer][slot, :, : k.shape[1]] = k
            self._v[layer][slot, :, : v.shape[1]] = v
