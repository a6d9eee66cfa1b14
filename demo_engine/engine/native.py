"""The CPU fast path's native code (`native_cpu.c`): built once per machine with the system C compiler, loaded with
ctypes, and wrapped as a linear layer, the tied head and a whole decode step for `native_model.py`. Its buffers are
numpy arrays: the native path runs without PyTorch.

On by default where it can run (`ENGINE_NATIVE_CPU`: "auto", the default; "off" for PyTorch's int4 kernel; "avx2"
for the AVX2 build on any machine). The weights stay in their Q4_1 blocks; activations are quantized to int16 per
block of 32 (scale amax / 32767), so the products are exact integer sums and the only rounding is the activations' at
1/65534 of a block's largest value: the argmax agrees with transformers' fp32 logits at 382 of 382 teacher-forced
positions (5 prompts), where PyTorch's int4 kernel with bf16 activations agrees at 379 (2026-12-02). The first
version quantized activations to int8 per block of 32, llama.cpp's recipe: 97.4%, below the engine's bar of 99%
(blocks of 8 would still only give 98.9%).

The build is picked at load time from the CPU's flags: AVX-512 with VNNI where the CPU has it (vpdpwssd), else AVX2
(with AVX-VNNI when present, else vpmaddwd); `ENGINE_NATIVE_CPU=avx2` forces the AVX2 build on an AVX-512 machine
(what an AVX2-only machine gets). The library is cached under the var directory (`SHOWCASE_VAR_DIR`, like the
tokenizer), keyed by the source and the flags, so only the first start on a machine compiles (about 2 s). Without a
compiler, or on a CPU without AVX2, FMA and F16C, the engine runs PyTorch's int4 kernel and says so in its backend
string.

Knows the Q4_1 byte layout and the C functions' signatures; nothing about tokens, text or scheduling.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo_engine.engine.tokenizer import var_dir

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native_cpu.c")
MAX_BATCH = 64  # rows of one native decode step; the scheduler's batches are at most 16 by default
ISA_FLAGS = {
    "avx512-vnni": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni"],
    "avx2-vnni": ["-mavx2", "-mfma", "-mf16c", "-mavxvnni"],
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
}
C_FLAGS = ["-O3", "-std=c11", "-fPIC", "-shared", "-pthread", "-fno-math-errno", "-D_POSIX_C_SOURCE=200809L"]


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def choose_isa(wanted: str | None = None) -> str | None:
    """The build to run: `wanted` (default `ENGINE_NATIVE_CPU`, else "auto") is "off", "auto" or "on" (the best this
    CPU has), "avx2" or "avx2-novnni"; None when off or when the CPU lacks AVX2, FMA and F16C."""
    wanted = (wanted or os.environ.get("ENGINE_NATIVE_CPU") or "auto").strip().lower()
    if wanted in ("off", "0", "false", "no"):
        return None
    flags = _cpu_flags()
    if not {"avx2", "fma", "f16c"} <= flags:
        return None
    has_avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni"} <= flags
    if wanted in ("on", "1", "true", "yes", "auto", "avx512") and has_avx512:
        return "avx512-vnni"
    if "avx_vnni" in flags and wanted != "avx2-novnni":
        return "avx2-vnni"
    return "avx2"


def _build(isa: str) -> Path:
    """The compiled library for `isa`, built into the var directory on first use."""
    source = SOURCE.read_bytes()
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or "cc"
    key = hashlib.sha256(source + repr((isa, ISA_FLAGS[isa], C_FLAGS, compiler)).encode()).hexdigest()[:16]
    target = var_dir() / "native" / f"native_cpu-{isa}-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    command = [compiler, *C_FLAGS, *ISA_FLAGS[isa], str(SOURCE), "-o", str(partial), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling {SOURCE.name} failed: {done.stderr.strip()[-500:]}")
    os.replace(partial, target)  # atomic: a concurrent worker never loads half a file
    return target


_PTR, _INT, _FLOAT = ctypes.c_void_p, ctypes.c_int, ctypes.c_float


class NativeCPU:
    """The loaded library with its thread pool (`threads` threads, the caller's included). Calls are serialised."""

    def __init__(self, path: Path, isa: str, threads: int) -> None:
        lib = ctypes.CDLL(str(path))
        lib.nc_context_new.restype = _PTR
        lib.nc_context_new.argtypes = [_INT]
        lib.nc_context_free.argtypes = [_PTR]
        lib.nc_gemm.argtypes = [_PTR, _PTR, _INT, _PTR, _PTR, _INT, _INT, _PTR]
        lib.nc_head.argtypes = [_PTR, _PTR, _INT, _INT, _PTR, _PTR, _INT, _PTR]
        lib.nc_pack_q4_1.argtypes = [_PTR, _INT, _INT, _PTR]
        lib.nc_pack_q8_0.argtypes = [_PTR, _INT, _INT, _PTR]
        lib.nc_model_new.restype = _PTR
        lib.nc_model_new.argtypes = [_INT] * 7 + [_FLOAT] * 2 + [_PTR] * 11
        lib.nc_model_free.argtypes = [_PTR]
        lib.nc_decode_step.restype = _INT
        lib.nc_decode_step.argtypes = [_PTR, _PTR, _INT, _PTR, _PTR, _PTR, _PTR, _PTR, _INT, _PTR]
        lib.nc_set_split_rows.argtypes = [_PTR, _INT]
        lib.nc_isa.restype = ctypes.c_char_p
        self.lib = lib
        self.isa = lib.nc_isa().decode()
        assert self.isa == isa, (self.isa, isa)
        self.threads = threads
        self.context = lib.nc_context_new(threads)
        self.lock = threading.Lock()

    def __del__(self) -> None:
        context, self.context = getattr(self, "context", None), None
        if context:
            self.lib.nc_context_free(context)


def load(threads: int, wanted: str | None = None) -> NativeCPU | None:
    """The native code for this CPU, built if needed; None when off, or (with the reason logged) when it cannot run
    here (the engine then runs PyTorch's int4 kernel)."""
    isa = choose_isa(wanted)
    if isa is None:
        return None
    try:
        return NativeCPU(_build(isa), isa, threads)
    except (OSError, RuntimeError) as error:
        logger.warning("native CPU kernels unavailable, using PyTorch's: %s", error)
        return None


def _ptr(array: np.ndarray) -> int:
    """The address of an array's first element (the C side's pointer)."""
    return array.ctypes.data


def _rows_f32(x: np.ndarray, width: int) -> np.ndarray:
    """x (..., width) as contiguous fp32 rows (M, width), without a copy when it already is."""
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1, width))


def pack_q4_1(native: NativeCPU, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_1 blocks (N, K/32*20) -> nibbles (N, K/2) uint8 in the order the kernel reads them (AVX-512: each group of
    16 blocks rearranged so that an int32 lane sums one block, see native_cpu.c; AVX2: as stored) and per row the
    K/32 scales d then the K/32 minimums m as fp16 bits (N, K/16) int16: 0.625 bytes a weight."""
    n_out = blocks.shape[0]
    b = np.asarray(blocks, dtype=np.uint8).reshape(n_out, -1, 20)  # (N, K/32, 20)
    stored = np.ascontiguousarray(b[..., 4:]).reshape(n_out, -1)  # (N, K/2), each block's 16 bytes as stored
    nib = np.empty_like(stored)
    native.lib.nc_pack_q4_1(_ptr(stored), n_out, stored.shape[1] * 2, _ptr(nib))
    d = np.ascontiguousarray(b[..., 0:2]).view(np.int16).reshape(n_out, -1)  # (N, K/32)
    m = np.ascontiguousarray(b[..., 2:4]).view(np.int16).reshape(n_out, -1)
    return nib, np.concatenate([d, m], axis=-1)  # (N, K/16)


def pack_q8_0(native: NativeCPU, codes: np.ndarray) -> np.ndarray | None:
    """Rearrange Q8_0 codes (V, K) int8 in place into the order the native head reads them (no copy of the table);
    returns, for each natural column, its position in the new order (index a row with it to read it back), or None
    when the order is unchanged (the AVX2 build)."""
    if not codes.flags.c_contiguous or codes.dtype != np.int8:
        raise ValueError("the codes must be contiguous int8")
    order = np.empty(codes.shape[1], dtype=np.int32)  # position -> natural column
    native.lib.nc_pack_q8_0(_ptr(codes), codes.shape[0], codes.shape[1], _ptr(order))
    if np.array_equal(order, np.arange(codes.shape[1], dtype=np.int32)):
        return None
    return np.argsort(order).astype(np.int64)  # natural column -> position


class NativeLinear:
    """y = x @ W.T with W in Q4_1 and x quantized to int16 per block of 32; fp32 in and out."""

    kernel = "q4_1-q16"

    def __init__(self, native: NativeCPU, blocks: np.ndarray, n_in: int) -> None:
        if n_in % 64:
            raise ValueError(f"the native kernel needs inputs in multiples of 64, not {n_in}")
        self.native = native
        self.nib, self.dm = pack_q4_1(native, blocks)
        self.n_out, self.n_in = blocks.shape[0], n_in

    def __call__(self, x: np.ndarray) -> np.ndarray:
        lead = np.shape(x)[:-1]
        rows = _rows_f32(x, self.n_in)  # (M, K)
        y = np.empty((rows.shape[0], self.n_out), dtype=np.float32)  # (M, N)
        with self.native.lock:
            self.native.lib.nc_gemm(self.native.context, _ptr(rows), rows.shape[0], _ptr(self.nib), _ptr(self.dm),
                                    self.n_out, self.n_in, _ptr(y))  # fmt: skip
        return y.reshape(*lead, self.n_out)


class NativeHead:
    """The tied head: logits = x @ E.T over the embedding's own Q8_0 codes (rearranged by `pack_q8_0`) and block
    scales (shared, not copied), x quantized to int16 per block of 32; fp32 in and out, every logit within about 2e-5
    (relative) of exact, for any number of rows (a row's logits do not depend on the others)."""

    def __init__(self, native: NativeCPU, codes: np.ndarray, scales: np.ndarray) -> None:
        self.native = native
        self.codes = np.ascontiguousarray(codes)  # (V, K) int8
        self.scales = np.ascontiguousarray(scales, dtype=np.float32)  # (V, K/32)
        self.vocab_size, self.dim = codes.shape

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = _rows_f32(x, self.dim)  # (M, K)
        logits = np.empty((rows.shape[0], self.vocab_size), dtype=np.float32)  # (M, V)
        with self.native.lock:
            self.native.lib.nc_head(self.native.context, _ptr(rows), rows.shape[0], self.dim, _ptr(self.codes),
                                    _ptr(self.scales), self.vocab_size, _ptr(logits))  # fmt: skip
        return logits


@dataclass
class _CachePointers:
    k: ctypes.Array
    v: ctypes.Array


class NativeDecoder:
    """Every block of a decode step in one native call: (B, dim) token embeddings in, final-normed hidden out."""

    def __init__(self, native: NativeCPU, config, layers, final_norm: np.ndarray) -> None:
        self.native = native
        n = config.n_layers

        def array(values: list[int]) -> ctypes.Array:
            return (ctypes.c_void_p * n)(*values)

        self._keep = [layers, final_norm]  # the arrays the C side points into
        self._pointers = [
            array([_ptr(layer.qkv.nib) for layer in layers]),
            array([_ptr(layer.qkv.dm) for layer in layers]),
            array([_ptr(layer.out.nib) for layer in layers]),
            array([_ptr(layer.out.dm) for layer in layers]),
            array([_ptr(layer.gate_up.nib) for layer in layers]),
            array([_ptr(layer.gate_up.dm) for layer in layers]),
            array([_ptr(layer.down.nib) for layer in layers]),
            array([_ptr(layer.down.dm) for layer in layers]),
            array([_ptr(layer.attn_norm) for layer in layers]),
            array([_ptr(layer.ffn_norm) for layer in layers]),
        ]
        self.dim = config.dim
        self.model = native.lib.nc_model_new(
            n, config.dim, config.n_heads, config.n_kv_heads, config.head_dim, config.ffn_dim, MAX_BATCH,
            config.norm_eps, config.rope_base, *self._pointers, _ptr(final_norm),
        )  # fmt: skip

    def __del__(self) -> None:
        model, self.model = getattr(self, "model", None), None
        if model:
            self.native.lib.nc_model_free(model)

    def _cache_pointers(self, cache) -> _CachePointers:
        """The K and V arrays of every layer of a cache (bf16 bits, (slots, Hk, max_len, D) uint16)."""
        pointers = getattr(cache, "_native_pointers", None)
        if pointers is None:
            layers = [cache.layer(index) for index in range(cache.n_layers)]
            pointers = _CachePointers(
                (ctypes.c_void_p * len(layers))(*[_ptr(k) for k, _v in layers]),
                (ctypes.c_void_p * len(layers))(*[_ptr(v) for _k, v in layers]),
            )
            cache._native_pointers = pointers
        return pointers

    def step(self, resid: np.ndarray, cache, slots: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """resid (B, dim) fp32 embeddings (overwritten); slots, positions (B,) int64 -> (B, dim) fp32."""
        batch = resid.shape[0]
        resid = _rows_f32(resid, self.dim)
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        positions = np.ascontiguousarray(positions, dtype=np.int64)
        out = np.empty((batch, self.dim), dtype=np.float32)
        pointers = self._cache_pointers(cache)
        with self.native.lock:
            status = self.native.lib.nc_decode_step(
                self.native.context, self.model, batch, _ptr(resid), _ptr(slots), _ptr(positions),
                pointers.k, pointers.v, cache.max_len, _ptr(out),
            )  # fmt: skip
        if status != 0:
            raise ValueError(f"native decode step refused a batch of {batch}")
        return out
