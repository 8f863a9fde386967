"""Real documentation no one here wrote: the PostgreSQL manual from Debian's postgresql-doc-15
package, fetched with `apt-get download` and unpacked with `dpkg -x` (no root), pages as text with
resiliparse keeping the page chrome (navigation bars, headings, footers) as crawled pages have it."""

from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE = "postgresql-doc-15"


def fetch_pages(work: Path) -> list[Path]:
    """The package's HTML pages, downloaded and unpacked once into work/."""
    root = work / "pkg"
    html = root / "usr/share/doc" / PACKAGE / "html"
    if not html.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["apt-get", "download", PACKAGE], cwd=work, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(["apt-get", "download", PACKAGE], cwd=work, check=True, capture_output=True)
        (deb,) = work.glob(f"{PACKAGE}_*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return sorted(html.glob("*.html"))


def page_text(path: Path) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(path.read_text(errors="replace"), main_content=False)


def index_once(pipe, docs: list, work: Path) -> None:
    """Index the pool documents unless these very documents were indexed before under this index
    version (a marker file in work/), with a progress bar."""
    import json

    from rich.progress import Progress

    marker = work / f"indexed-{pipe.cfg.index_version()}.json"
    if marker.exists() and json.loads(marker.read_text()) == [d.doc_id for d in docs]:
        return
    index = pipe.index()
    with Progress() as progress:
        task = progress.add_task("index", total=len(docs))
        for i in range(0, len(docs), 32):
            index.process(docs[i : i + 32])
            progress.advance(task, len(docs[i : i + 32]))
    marker.write_text(json.dumps([d.doc_id for d in docs]))
