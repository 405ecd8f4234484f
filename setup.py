"""Build step for the one compiled module (metadata lives in pyproject.toml)."""

import platform
import sys

from setuptools import Extension, setup

vector_exp = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
brent = Extension(
    "torchgenetics.susie._brent",
    sources=["torchgenetics/susie/_brent.c"],
    # -ffp-contract=off: each scalar step is the IEEE operation the Python search does.
    extra_compile_args=["-O2", "-ffp-contract=off"],
    define_macros=[("TG_LIBMVEC", "1")] if vector_exp else [],
    libraries=["mvec", "m"] if vector_exp else ["m"],
)

setup(ext_modules=[brent])
