"""Name -> object registries for what a config may name: objectives, poolings and cells.

Config validation reads these registries, so a loss, pooling or cell a user registers can be
chosen from a config (TextBrewer's `KD_LOSS_MAP`). The module imports no torch: built-in entries
are "module:attribute" paths, imported on first `get`, so `distilrnn.config` knows every built-in
name in the runtime-only install. Register through `distilrnn.losses.register_loss`,
`distilrnn.student.register_pooling` and `distilrnn.student.register_cell`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from distilrnn.errors import ConfigError


def one_of(names: tuple[str, ...]) -> str:
    """`a`, `a or b`, `a, b or c`: alternatives as an error message lists them."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


@dataclass(frozen=True)
class _Lazy:
    """A built-in entry not imported yet: "module:attribute"."""

    path: str

    def load(self) -> Any:
        module, attribute = self.path.split(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """Names mapped to objects; built-ins may be given as "module:attribute" paths, imported on
    first `get`."""

    def __init__(self, kind: str, builtins: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {
            name: _Lazy(path) for name, path in (builtins or {}).items()
        }

    def register(self, name: str, obj: Any = None, *, replace: bool = False) -> Any:
        """Register `obj` as `name` and return it; without `obj`, a decorator that does so.

        Raises:
            ValueError: `name` is not a non-empty string, or is taken and `replace` is False.
        """
        if obj is None:
            return lambda target: self.register(name, target, replace=replace)
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass replace=True to replace it"
            )
        self._entries[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Forget `name` (e.g. after a test registered it)."""
        self.get(name)  # raises for an unknown name
        del self._entries[name]

    def names(self) -> tuple[str, ...]:
        """Every registered name: built-ins first, then in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def problem(self, name: object) -> str | None:
        """None if `name` is registered, else what is wrong with it (a config error's text)."""
        if isinstance(name, str) and name in self._entries:
            return None
        return f"must be {one_of(self.names())}, got {name!r}"

    def get(self, name: str) -> Any:
        """The object registered as `name`.

        Raises:
            ConfigError: no such name; the message lists the registered ones.
        """
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}"
            )
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = self._entries[name] = entry.load()
        return entry

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"


OBJECTIVES = Registry(
    "objective",
    {name: f"distilrnn.losses:{name}_loss" for name in ("ce", "mse", "kl")},
)
POOLINGS = Registry(
    "pooling",
    {
        name: f"distilrnn.student.attention:{name}_pooling"
        for name in ("attention", "max", "mean", "last")
    },
)
CELLS = Registry("cell", {"lstm": "torch.nn:LSTM", "gru": "torch.nn:GRU"})
