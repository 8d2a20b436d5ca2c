"""Builds the optional C fast path and native epoch ticker; everything else is in pyproject.toml.

`optional=True`: a machine without a C compiler still installs wasmhost, which
then runs invocations through ctypes (wasmhost/native.py) instead, and ticks
the epoch from a Python thread (wasmhost/engine.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("wasmhost._fastpath", ["wasmhost/_fastpath.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
        Extension("wasmhost._ticker", ["wasmhost/_ticker.c"], optional=True, libraries=["pthread"],
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
    ],
)
