"""Suite-wide setup: on a machine without CUDA, Triton kernels run under the interpreter.

TRITON_INTERPRET must be set before the first ``import triton`` anywhere in the process (a module compiled
without it cannot be interpreted later), so it is set here, before any test module is collected.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
