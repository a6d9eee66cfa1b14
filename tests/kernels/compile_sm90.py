"""Compile every Triton kernel, as its launcher calls it, to an sm_90 (H200) cubin on a machine without a GPU.

The interpreter accepts code the compiler rejects (types of loop-carried values, constexpr rules); this runs the real
compiler and the bundled ptxas. Run by tests/kernels/test_compile_sm90.py in a subprocess, because the test session
itself has TRITON_INTERPRET=1 set. Prints one line per compiled kernel.
"""

import os

os.environ.pop("TRITON_INTERPRET", None)
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

TY = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.int32: "i32",
    torch.int64: "i64",
    torch.uint8: "u8",
}
done = []


def fake_run(self, *args, grid, warmup, **kwargs):
    opts = {k: kwargs.pop(k) for k in list(kwargs) if k not in self.arg_names}
    bound = dict(zip(self.arg_names, args, strict=False))  # the rest come as keywords
    bound.update(kwargs)
    sig, const = {}, {}
    for name in self.arg_names:
        v = bound[name]
        p = self.params[self.arg_names.index(name)]
        if p.is_constexpr:
            sig[name] = "constexpr"
            const[name] = v
        elif isinstance(v, torch.Tensor):
            sig[name] = "*" + TY[v.dtype]
        elif isinstance(v, bool):
            sig[name] = "i1"
        elif isinstance(v, int):
            sig[name] = "i64" if abs(v) >= 2**31 else "i32"
        elif isinstance(v, float):
            sig[name] = "fp32"
        else:
            raise TypeError((name, v))
    k = triton.compile(ASTSource(self, sig, const), target=GPUTarget("cuda", 90, 32), options=opts)
    done.append((self.__name__, k.n_regs if hasattr(k, "n_regs") else None, k.metadata.shared))


JITFunction.run = fake_run
from kernels import ops  # noqa: E402 (after the patch: the kernels must be JITFunctions, not launched)

torch.manual_seed(0)
for dt in (torch.float32, torch.bfloat16):
    x = torch.randn(4, 576, dtype=dt)
    ops.rms_norm(x, torch.ones(576), 1e-5, x)
    ops.rms_norm(x, torch.ones(576), 1e-5)
    ops.swiglu(x, x)
    q = torch.randn(2, 3, 9, 64, dtype=dt)
    k = torch.randn(2, 3, 3, 64, dtype=dt)
    c = torch.rand(2, 3, 32)
    ops.apply_rotary(q, k, c, c)
    kc = torch.randn(2, 3, 300, 64, dtype=dt)
    ops.decode_attention(q[:, 0], kc, kc, torch.tensor([0, 1]), torch.tensor([5, 300], dtype=torch.int32), 0.125)
    b = torch.randint(0, 256, (64, 576 // 32 * 20), dtype=torch.uint8)
    ops.q4_1_matmul(torch.randn(1, 576, dtype=dt), b, 64, 576)
    ops.q4_1_matmul(torch.randn(20, 576, dtype=dt), b, 64, 576)
    ops.sample(
        torch.randn(2, 49152, dtype=dt), torch.ones(2), torch.zeros(2, dtype=torch.int64), torch.ones(2), torch.rand(2)
    )
for name, _, shared in done:
    print(name, shared)
