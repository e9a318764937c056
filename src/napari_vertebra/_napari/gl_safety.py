"""Keep triton out of a napari process that draws with Mesa's software OpenGL (llvmpipe).

llvmpipe and triton each bundle their own LLVM. Once llvmpipe's is loaded (a viewer exists),
importing triton crashes the process with a segmentation fault; torch imports triton whenever
``torch._dynamo`` loads, which torchvision and segmentation-models-pytorch do. This plugin
never uses triton (no ``torch.compile``), so in that situation the import is made to fail
cleanly instead, and torch carries on as if triton were not installed. On Linux, llvmpipe is
recognised by its LLVM library being mapped into the process; elsewhere nothing is done.
"""

from __future__ import annotations

import sys


def software_llvm_loaded() -> bool:
    """Whether a Mesa LLVM library is mapped into this process (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/maps") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


def keep_triton_away() -> bool:
    """Block ``import triton`` when it would crash this process; returns whether it did."""
    if "triton" in sys.modules or not software_llvm_loaded():
        return False
    sys.modules["triton"] = None  # import triton -> ImportError; torch treats it as absent
    return True
