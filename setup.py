"""Builds the optional C fast path and native epoch ticker; everything else is in pyproject.toml.

`optional=True`: a machine without a C compiler still installs wasmhost, which
then runs invocations through ctypes (wasmhost/native.py) instead, and ticks
the epoch from a Python thread (wasmhost/engine.py).
"""

from setuptools import Extension, setup

FASTPATH_SOURCES = ("fastpath", "fastpath_call", "fastpath_host", "fastpath_codec")

setup(
    ext_modules=[
        Extension("wasmhost._fastpath", [f"wasmhost/csrc/{name}.c" for name in FASTPATH_SOURCES],
                  depends=["wasmhost/csrc/fastpath.h"], include_dirs=["wasmhost/csrc"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
        Extension("wasmhost._ticker", ["wasmhost/csrc/ticker.c"], optional=True, libraries=["pthread"],
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
    ],
)
