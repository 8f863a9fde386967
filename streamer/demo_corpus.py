"""A demo corpus every machine has: the documentation of the installed standard library.

Nothing third-party is committed: the text is read from this interpreter's own modules with ast.
Each module gives two pages, as documentation sites do: an API listing (every public function and
class with its signature) and the page of docstrings. The listing is real distant context for the
docstring page: it tells which name comes next, exactly the kind of dependency EntropyLong keeps.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import pkgutil
import sys
from pathlib import Path

SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip"}


def _module_tree(name: str) -> ast.Module | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def api_listing(name: str, tree: ast.Module) -> str:
    """Every public top-level function and class of the module with its signature."""
    lines = [f"{name} API reference", ""]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            lines.append(f"{name}.{node.name}({ast.unparse(node.args)})")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            lines.append(f"class {name}.{node.name}({bases})")
    return "\n".join(lines)


def module_text(name: str, max_chars: int, tree: ast.Module | None = None) -> str | None:
    """Module, class and function docstrings read with ast from the source: nothing is imported."""
    tree = tree or _module_tree(name)
    if tree is None:
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
            tree = _module_tree(name)
            text = module_text(name, max_chars, tree) if tree else None
            if not text or len(text) < min_chars:
                continue
            listing = api_listing(name, tree)
            pages = [(f"{name}#api", listing), (name, text)] if listing.count("\n") >= 4 else [(name, text)]
            for page_id, page in pages:
                fh.write(json.dumps({"id": page_id, "text": page, "url": f"pydoc:{page_id}"}) + "\n")
                rows += 1
                if rows == documents:
                    return rows
    return rows
