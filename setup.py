"""Builds the optional C fast path; everything else is in pyproject.toml.

`optional=True`: a machine without a C compiler still installs wasmhost, which
then runs invocations through ctypes (wasmhost/native.py) instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("wasmhost._fastpath", ["wasmhost/_fastpath.c"], optional=True,
                  extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]),
    ],
)
