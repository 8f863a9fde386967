"""docs/configuration.md, rendered from the settings themselves: each field's docstring (its
description), type, bounds and default. Regenerate with `python -m entropylong_streamer.generated_files`;
tests/test_generated_files.py fails when the committed page differs."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config import ENV_PREFIX, Config

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

INTRO = """# Configuration

Generated from the settings' descriptions in `streamer/config_method.py` and `streamer/config_services.py` by
`python -m entropylong_streamer.generated_files`: edit those, not this page.

One object, validated at start-up and layered: defaults, then a TOML file (`-c FILE`, or
`ELONG_CONFIG`), then environment variables (`ELONG_SECTION__KEY`), then flags
(`--set section.key=value`). An unknown or invalid setting stops the command with one line per
problem and where its value came from. `elong config` prints the result. The stage versions
(docs/method.md) hash the settings each stage's output depends on: a change to one of those makes
a new version of that stage and every stage after it.
"""

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def render() -> str:
    parts = [INTRO]
    top = {name: f for name, f in Config.model_fields.items() if not _section(f)}
    parts.append("## top level\n\n" + "".join(_setting(name, f) for name, f in top.items()))
    for name, f in Config.model_fields.items():
        if (section := _section(f)) is not None:
            doc = (section.__doc__ or "").strip()
            intro = f"{' '.join(doc.split())}\n\n" if doc and section.__doc__ != BaseModel.__doc__ else ""
            parts.append(f"## {name}\n\n{intro}" + "".join(
                _setting(f"{name}.{key}", sf) for key, sf in section.model_fields.items()))
    return "\n".join(parts)


def _section(f: FieldInfo) -> type[BaseModel] | None:
    return f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None


def _setting(key: str, f: FieldInfo) -> str:
    default = "(none)" if f.default is None else f"`{json.dumps(f.default, default=str)}`"
    env = ENV_PREFIX + key.upper().replace(".", "__")
    desc = " ".join((f.description or "").split())
    return f"- **`{key}`** = {default}; {_kind(f)}; `{env}`  \n  {desc}\n"


def _kind(f: FieldInfo) -> str:
    text = _type_name(f.annotation)
    bounds = [f"{_BOUNDS[n]} {getattr(m, n)}" for m in f.metadata for n in _BOUNDS if hasattr(m, n)]
    return text + (f" {', '.join(bounds)}" if bounds else "")


def _type_name(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest) + " or none"
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args)
    if origin is not None:
        return {list: "list", dict: "mapping"}.get(origin, str(origin))
    return {int: "integer", float: "number", str: "text", bool: "true/false", Path: "path"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))
