"""A demo corpus every machine has: the documentation strings of the installed standard library.

Nothing third-party is committed: the text is read from this interpreter's own modules.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip"}


def module_text(name: str, max_chars: int) -> str | None:
    """Module, class and function docstrings read with ast from the source: nothing is imported."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    parts = [f"Module {name}\n\n{ast.get_docstring(tree) or ''}"]
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and not node.name.startswith("_"):
            doc = ast.get_docstring(node)
            if doc:
                parts.append(f"{name}.{node.name}\n{doc}")
    text = "\n\n".join(parts)
    return text[:max_chars].rsplit("\n", 1)[0] if len(text) > max_chars else text


def write_demo_corpus(path: Path, documents: int, min_chars: int = 600, max_chars: int = 1600) -> int:
    """Write up to `documents` JSONL rows (FineWeb fields: id, text, url); returns how many."""
    names = sorted(m.name for m in pkgutil.iter_modules() if m.name in sys.stdlib_module_names
                   and m.name not in SKIP and not m.name.startswith("_"))
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for name in names:
            text = module_text(name, max_chars)
            if text and len(text) >= min_chars:
                fh.write(json.dumps({"id": name, "text": text, "url": f"pydoc:{name}"}) + "\n")
                rows += 1
                if rows == documents:
                    break
    return rows
