"""Atomic writes: write to a temporary sibling, then rename, so a killed run never leaves a
half-written file that looks complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` on a temporary sibling of `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp_path = Path(name)
    try:
        write(tmp_path)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: Any, indent: int | None = 2) -> None:
    """Write `payload` as JSON to `path` atomically (non-JSON values are written as strings)."""
    text = json.dumps(payload, indent=indent, default=str)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def replace_directory(tmp: Path, final: Path) -> None:
    """Move a freshly built folder `tmp` to `final`; an existing `final` is moved aside first
    and removed only once the new one is in place."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
