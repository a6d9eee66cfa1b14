"""Kernels for the decode path of the chat model: Triton kernels (`kernels.ops`), their plain-PyTorch references
(`kernels.reference`) and the one dispatch that picks between them (`kernels.dispatch`).

Callers use `from kernels import dispatch`. Importing this package does not import Triton and does not need a GPU.
It knows nothing about the model, the engine or Django.
"""
