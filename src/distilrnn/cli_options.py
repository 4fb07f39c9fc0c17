"""CLI flags generated from a settings dataclass: one `--flag` per field of a config section,
with the field's help text, so a setting cannot be in the TOML and not on the command line."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, get_type_hints

import typer

from distilrnn.config import SECTIONS


def settings_options(section: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one `--flag` per field of `[section]`'s settings dataclass (help text
    from the field); the command receives the flags given as `section_values`, a dict that
    overrides the config's `[section]`."""
    cls = SECTIONS[section]
    hints = get_type_hints(cls)

    def option(field: dataclasses.Field) -> inspect.Parameter:
        flag = "--" + field.name.replace("_", "-")
        hint = hints[field.name]
        help_text = field.metadata.get("help", "")
        if hint is bool:
            declared: Any = Annotated[
                bool | None, typer.Option(f"{flag}/--no-{flag[2:]}", help=help_text)
            ]
        elif getattr(hint, "__origin__", None) is list:
            declared = Annotated[hint | None, typer.Option(flag, help=help_text + " Repeatable.")]
        else:
            declared = Annotated[hint | None, typer.Option(flag, help=help_text)]
        return inspect.Parameter(
            f"{section}__{field.name}",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=declared,
        )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        resolved = get_type_hints(command, include_extras=True)  # annotations are strings here
        own = [
            p.replace(annotation=resolved[p.name])
            for p in signature.parameters.values()
            if p.name != "section_values"
        ]
        prefix = f"{section}__"

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            given = {
                name.removeprefix(prefix): kwargs.pop(name)
                for name in [n for n in kwargs if n.startswith(prefix)]
            }
            given = {k: v for k, v in given.items() if v is not None and v != []}
            return command(**kwargs, section_values=given)

        wrapper.__signature__ = signature.replace(
            parameters=[*own, *(option(f) for f in dataclasses.fields(cls))]
        )
        return wrapper

    return decorate
