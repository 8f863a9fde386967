"""A demo corpus every machine has: the documentation of the installed standard library.

Nothing third-party is committed: the text is read from this interpreter's own modules with ast.
Each module gives two pages, as documentation sites do: an API listing (every public function and
class with its signature) and the page of docstrings. The listing is real distant context for the
docstring page: it tells which name comes next, exactly the kind of dependency EntropyLong keeps.

`elong demo` builds long samples from quick-reference sheets (write_reference_demo): each cites
one method of each of several modules with its signature, which only that module's API reference
page states in full. The reference pages are the pool; a sheet's verified contexts are the pages
whose parameter names it uses, so its sample holds several whole pages before it.
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


def reference_page(name: str, tree: ast.Module, max_chars: int = 3000) -> str:
    """The API listing with every public method of every public class, signatures in full."""
    lines = [f"{name} API reference", ""]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            lines.append(f"{name}.{node.name}({ast.unparse(node.args)})")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            lines.append(f"class {name}.{node.name}({', '.join(ast.unparse(b) for b in node.bases)})")
            lines += [f"    {name}.{node.name}.{m.name}({ast.unparse(m.args)})" for m in node.body
                      if isinstance(m, ast.FunctionDef) and not m.name.startswith("_")]
    return _cut("\n".join(lines), max_chars)


def _cut(text: str, max_chars: int) -> str:
    return text[:max_chars].rsplit("\n", 1)[0] if len(text) > max_chars else text


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
    return _cut("\n\n".join(parts), max_chars)


def _stdlib_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules() if m.name in sys.stdlib_module_names
                  and m.name not in SKIP and not m.name.startswith("_"))


def _cited(name: str, tree: ast.Module, page: str) -> tuple[str, ast.FunctionDef] | None:
    """The method (or function) of a module a sheet cites: documented, with at least two parameters,
    its signature on the module's reference page (which may be cut short)."""
    found = []
    for node in tree.body:
        members = node.body if isinstance(node, ast.ClassDef) and not node.name.startswith("_") else [node]
        found += [(f"{name}.{node.name}.{m.name}" if m is not node else f"{name}.{m.name}", m) for m in members
                  if isinstance(m, ast.FunctionDef) and not m.name.startswith("_") and ast.get_docstring(m)
                  and len([a for a in m.args.posonlyargs + m.args.args + m.args.kwonlyargs
                           if a.arg not in ("self", "cls")]) >= 2]
    found = [(qualname, m) for qualname, m in found if f"{qualname}({ast.unparse(m.args)})" in page]
    return found[len(found) // 2] if len(found) >= 3 else None


def write_reference_demo(directory: Path, sheets: int, per_sheet: int = 6) -> tuple[Path, Path, int, int]:
    """docs.jsonl: `sheets` quick-reference sheets, each citing one method of `per_sheet` modules with
    its signature and the first line of its docstring; pool.jsonl: those modules' API reference and
    docstring pages. Returns the two paths and how many rows each holds."""
    found: list[tuple[str, ast.Module, str, str, ast.FunctionDef]] = []  # name, tree, page, cited
    for name in _stdlib_modules():
        tree = _module_tree(name)
        page = reference_page(name, tree) if tree else ""
        cited = _cited(name, tree, page) if len(page) >= 600 else None
        if cited:
            found.append((name, tree, page, *cited))
    # the modules with the longest reference pages (the longest contexts), in name order
    longest = sorted(found, key=lambda m: (-len(m[2]), m[0]))[: sheets * per_sheet]
    picked = sorted(longest, key=lambda m: m[0])
    pool = []
    for name, tree, page, _, _ in picked:
        pool.append({"id": f"{name}#api", "text": page, "url": f"pydoc:{name}#api"})
        if text := module_text(name, 3000, tree):
            pool.append({"id": name, "text": text, "url": f"pydoc:{name}"})
    docs = []
    for i in range(0, len(picked) - per_sheet + 1, per_sheet):
        mine = picked[i : i + per_sheet]
        names = [m[0] for m in mine]
        text = f"Quick reference {len(docs) + 1}: the calls our build scripts make into {', '.join(names[:-1])} " \
               f"and {names[-1]}.\n"
        for _, _, _, qualname, node in mine:
            text += f"\n{qualname}({ast.unparse(node.args)})\n    {ast.get_docstring(node).strip().splitlines()[0]}\n"
        docs.append({"id": f"quickref-{len(docs) + 1}", "text": text, "url": f"quickref:{len(docs) + 1}"})
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "quickref.jsonl", directory / "reference-pages.jsonl"
    for path, rows in zip(paths, (docs, pool), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return *paths, len(docs), len(pool)


def write_demo_corpus(path: Path, documents: int, min_chars: int = 600, max_chars: int = 1600) -> int:
    """Write up to `documents` JSONL rows (FineWeb fields: id, text, url); returns how many."""
    names = _stdlib_modules()
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
