"""Triton kernels and their launchers, one module per operation (`_<op>_kernel` and a launcher `<op>(...)`).

Importing this package imports Triton and decorates the kernels; on a machine without a GPU set TRITON_INTERPRET=1
first (`kernels.dispatch` does so). The launchers take the same arguments as their twins in `kernels.reference` and
know nothing about the model, the engine or the dispatch rule.
"""

from kernels.ops.decode_attention import decode_attention
from kernels.ops.q4_1_matmul import q4_1_matmul
from kernels.ops.rms_norm import rms_norm
from kernels.ops.rotary import apply_rotary
from kernels.ops.sample import sample
from kernels.ops.swiglu import swiglu

__all__ = ["apply_rotary", "decode_attention", "q4_1_matmul", "rms_norm", "sample", "swiglu"]
