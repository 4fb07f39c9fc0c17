"""The file-system side of building a bundle: the temporary sibling folder it is built in and
renamed from (`building`), removal of temporaries a killed export left, the umask's modes for
the finished folder, machine-free names (`portable_name`) and the bundle files' bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from distilrnn.atomic import replace_directory
from distilrnn.errors import BundleError
from distilrnn.runtime import BUNDLE_FILES, BUNDLE_FORMAT, CONFIG_NAME

# the bundle's log, where these messages have always gone
logger = logging.getLogger("distilrnn.export.bundle")


def portable_name(value: str | None) -> str | None:
    """A name that says nothing of the machine: an absolute or home-relative path becomes its
    last part (the folder's name); a hub id or a plain name is kept."""
    if not value:
        return value
    text = str(value)
    if os.path.isabs(text) or text.startswith(("~", "./", "../")) or "\\" in text:
        return Path(text.replace("\\", "/")).name or text
    return text


def file_bytes(directory: Path, names: Sequence[str] = BUNDLE_FILES) -> dict[str, int]:
    """Bytes of each bundle file (the model card aside)."""
    return {name: (directory / name).stat().st_size for name in names}


def _check_output_dir(output_dir: Path) -> None:
    """Refuse to replace a folder that is not a bundle: replacing it would delete its files."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise BundleError(f"output {output_dir} exists and is not a directory")
    config_path = output_dir / CONFIG_NAME
    is_bundle = False
    if config_path.is_file():
        try:
            is_bundle = json.loads(config_path.read_text()).get("format") == BUNDLE_FORMAT
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            is_bundle = False
    if any(output_dir.iterdir()) and not is_bundle:
        raise BundleError(
            f"output {output_dir} exists and is not a distilrnn bundle; choose another folder"
        )


def _temp_prefix(output_dir: Path) -> str:
    return f".{output_dir.name}.tmp-"


def remove_stale_builds(output_dir: Path) -> list[Path]:
    """Remove the temporary folders an earlier, killed export of `output_dir` left beside it:
    only folders named exactly as `building` names them (`.<name>.tmp-` and mkdtemp's eight
    characters), never another file. Returns what was removed."""
    if not output_dir.parent.is_dir():
        return []
    pattern = re.compile(re.escape(_temp_prefix(output_dir)) + r"[a-z0-9_]{8}")
    stale = [
        path
        for path in output_dir.parent.iterdir()
        if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
    ]
    for path in stale:
        logger.info("removing %s, left by an interrupted export", path.name)
        shutil.rmtree(path, ignore_errors=True)
    return stale


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask_modes(directory: Path) -> None:
    """Give `directory` and what it holds the modes a plain `mkdir` / `open` would: mkdtemp and
    mkstemp make them private (0700 / 0600), and a bundle is meant to be shared."""
    mask = current_umask()
    for path in directory.rglob("*"):
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
    directory.chmod(0o777 & ~mask)


@contextlib.contextmanager
def building(output_dir: Path) -> Iterator[Path]:
    """A temporary sibling of `output_dir` to build a bundle in; moved to `output_dir` (with
    the umask's modes) when the block succeeds, removed (leaving `output_dir` as it was) when it
    fails. Temporary folders an earlier killed export left are removed first."""
    _check_output_dir(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(output_dir)
    tmp = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=_temp_prefix(output_dir)))
    try:
        yield tmp
        apply_umask_modes(tmp)
        replace_directory(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
