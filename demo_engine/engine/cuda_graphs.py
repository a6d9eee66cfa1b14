"""Decode steps on CUDA replayed as CUDA graphs, one graph per batch-size bucket.

A decode step of this model is some 360 kernel launches (30 blocks of about twelve), each costing host time in
Python (PyTorch's dispatch, Triton's launcher): at batch 1 the GPU would wait on Python. A CUDA graph records the
step's launches once and replays them with one call. What a graph needs, and this module provides:

- static inputs: the token ids, slots and positions live in device buffers captured once; each step copies its
  values into them (from a pinned host buffer, asynchronously) before the replay;
- a static KV cache (the scheduler's, allocated once) and a fixed attention span (the cache length), so no step
  reads the longest sequence's length back from the device (`LlamaModel.decode(attention_span=...)`);
- buckets: a batch of B requests replays the graph of the smallest bucket >= B (1, 2, 4, 8, ... up to max_batch);
  the padding rows decode token 0 at position 0 of a slot kept for them (`pad_slot`, never handed to a request), so
  they touch no live request's cache, and their logits are dropped;
- warm-up on a side stream before each capture (Triton compiles there, never during capture), one memory pool
  shared by all the graphs, captured largest bucket first so the smaller ones fit in its memory.

Every graph is keyed by the dispatch backend that was active when it was captured ("triton" or "torch"), since a
replay runs exactly the kernels it recorded. Sampling stays outside the graph (penalties, per-request generators);
the step's one host sync is the sampler reading the chosen token ids back. Used by the scheduler on CUDA only
(`ENGINE_CUDA_GRAPHS=off` turns it off there); on the CPU nothing here runs. `capture=False` runs the same padded
static-buffer steps eagerly: that is how the CPU tests check the padding and buckets. Knows the model's `decode`
and the KV cache layout, not requests, sampling or text.
"""

from __future__ import annotations

import os

import torch

from demo_engine.engine.kv_cache import KVCache
from demo_engine.engine.model import LlamaModel
from kernels import dispatch

WARMUP_STEPS = 2  # runs before each capture: Triton's compilation and cuBLAS's workspace happen here


def cuda_graphs_enabled() -> bool:
    """`ENGINE_CUDA_GRAPHS` (default on): off runs CUDA decode steps eagerly, one launch at a time."""
    return os.environ.get("ENGINE_CUDA_GRAPHS", "on").strip().lower() not in ("0", "off", "false", "no")


def batch_buckets(max_batch: int) -> tuple[int, ...]:
    """The batch sizes that get a graph: powers of two below `max_batch`, and `max_batch` itself."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    buckets = []
    size = 1
    while size < max_batch:
        buckets.append(size)
        size *= 2
    return (*buckets, max_batch)


def bucket_for(batch: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket that holds `batch` rows."""
    for bucket in buckets:
        if bucket >= batch >= 1:
            return bucket
    raise ValueError(f"a batch of {batch} does not fit the buckets {buckets}")


def pad_rows(
    tokens: list[int], slots: list[int], positions: list[int], bucket: int, pad_slot: int
) -> tuple[list[int], list[int], list[int]]:
    """The step's rows padded to `bucket`: padding decodes token 0 at position 0 of `pad_slot`."""
    if not len(tokens) == len(slots) == len(positions) <= bucket:
        raise ValueError("tokens, slots and positions must have one entry per row, at most `bucket`")
    if pad_slot in slots:
        raise ValueError(f"slot {pad_slot} is the padding slot and cannot hold a request")
    padding = bucket - len(tokens)
    return tokens + [0] * padding, slots + [pad_slot] * padding, positions + [0] * padding


class GraphedDecoder:
    """`LlamaModel.decode` for the scheduler on CUDA: fixed-size static inputs, one captured graph per bucket."""

    def __init__(
        self, model: LlamaModel, cache: KVCache, *, max_batch: int, pad_slot: int, capture: bool = True
    ) -> None:
        self.model = model
        self.cache = cache
        self.pad_slot = pad_slot
        self.buckets = batch_buckets(max_batch)
        self.capture = capture
        device = model.device
        largest = self.buckets[-1]
        # (3, largest): token ids, slots, positions. Rows of one bucket are the views [:, :bucket].
        self._static = torch.zeros((3, largest), dtype=torch.int64, device=device)
        self._static[1].fill_(pad_slot)
        on_cuda = device.type == "cuda"
        self._host = torch.zeros((3, largest), dtype=torch.int64, pin_memory=on_cuda)
        self._copied = torch.cuda.Event() if on_cuda else None  # the last copy out of `_host` has finished
        self._graphs: dict[tuple[int, str], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._pool: tuple[int, int] | None = None
        self.steps = 0  # decode steps served
        self.replays = 0  # of which by replaying a captured graph

    def _inputs(self, bucket: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._static[0, :bucket], self._static[1, :bucket], self._static[2, :bucket]

    def _forward(self, bucket: int) -> torch.Tensor:
        tokens, slots, positions = self._inputs(bucket)
        return self.model.decode(tokens, self.cache, slots, positions, attention_span=self.cache.max_len)

    def _capture_all(self, backend: str) -> None:
        """Capture every bucket's graph for `backend`, largest first (the pool then fits the smaller ones)."""
        for bucket in reversed(self.buckets):
            self._static[:, :bucket] = torch.tensor([[0], [self.pad_slot], [0]], device=self._static.device)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_STEPS):
                    self._forward(bucket)
            torch.cuda.current_stream().wait_stream(side)
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            # thread_local: the scheduler thread captures while other threads of the process may use CUDA.
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                logits = self._forward(bucket)  # (bucket, V), kept alive so no later capture reuses its memory
            self._graphs[(bucket, backend)] = (graph, logits)

    def decode(self, tokens: list[int], slots: list[int], positions: list[int]) -> torch.Tensor:
        """fp32 logits (B, V) for B rows: token ids, their cache slots, their positions (as `LlamaModel.decode`).

        The logits are a view of the graph's output buffer: valid until the next call.
        """
        bucket = bucket_for(len(tokens), self.buckets)
        rows = pad_rows(tokens, slots, positions, bucket, self.pad_slot)
        backend = dispatch.backend_for(self._static)
        if self.capture and (bucket, backend) not in self._graphs:
            self._capture_all(backend)  # once per backend, on the first step
        if self._copied is not None:
            self._copied.synchronize()  # the previous step's copy out of the pinned buffer is done (long since)
        self._host[:, :bucket] = torch.tensor(rows, dtype=torch.int64)
        # The whole buffer (768 bytes at 32 rows): a contiguous pinned copy stays asynchronous; a bucket's slice is
        # strided and would be staged through pageable memory. Rows past the bucket are read by no graph of it.
        self._static.copy_(self._host, non_blocking=True)
        if self._copied is not None:
            self._copied.record()
        self.steps += 1
        if not self.capture:
            return self._forward(bucket)[: len(tokens)]
        graph, logits = self._graphs[(bucket, backend)]
        graph.replay()
        self.replays += 1
        return logits[: len(tokens)]
