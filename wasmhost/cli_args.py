"""Argument types the command line shares between its local commands (`cli.py`) and its
client commands (`cli_client.py`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"header must look like 'Name: value', got {text!r}")
    return name.strip().lower(), value.strip()


def env(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--env must look like KEY=VALUE, got {text!r}")
    return key, value


def data(text: str) -> bytes:
    """-d DATA, or -d @file (as curl), or -d @- for stdin."""
    if text.startswith("@"):
        source = text[1:]
        if source == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(source).read_bytes()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {source}: {exc.strerror}") from None
    return text.encode()
