"""Build step for the compiled modules (metadata lives in pyproject.toml)."""

import platform
import sys

from setuptools import Extension, setup

# glibc's vector math library (libmvec) on x86-64 Linux; elsewhere the C library's exp.
linux_x86 = (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
             and platform.libc_ver()[0] == "glibc")
# -ffp-contract=off: no fused multiply-adds, so each operation is the IEEE one the
# Python code does and every instruction set gives the same bits.
flags = ["-O3", "-ffp-contract=off", "-Wno-psabi"]

brent = Extension(
    "torchgenetics.susie._brent",
    sources=["torchgenetics/susie/_brent.c"],
    extra_compile_args=flags,
    define_macros=[("TG_LIBMVEC", "1")] if linux_x86 else [],
    libraries=["mvec", "m"] if linux_x86 else ["m"],
)
products = Extension(
    "torchgenetics.susie._products",
    sources=["torchgenetics/susie/_products.c"],
    extra_compile_args=flags,
)

setup(ext_modules=[brent, products])
