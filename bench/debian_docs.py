"""Real documentation no one here wrote: the PostgreSQL manual from Debian's postgresql-doc-15
package (and, for pools of thousands of pages, the Linux kernel's and Python's documentation from
linux-doc-6.1 and python3.11-doc), fetched with `apt-get download` and unpacked with `dpkg -x` (no
root), pages as text with resiliparse keeping the page chrome (navigation bars, headings, footers)
as crawled pages have it."""

from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE = "postgresql-doc-15"
# package -> its HTML folder once unpacked; the kernel's and Python's are trees of Sphinx pages
HTML_DIRS = {PACKAGE: f"usr/share/doc/{PACKAGE}/html", "linux-doc-6.1": "usr/share/doc/linux-doc-6.1/html",
             "python3.11-doc": "usr/share/doc/python3.11/html"}


def fetch_pages(work: Path, package: str = PACKAGE) -> list[Path]:
    """The package's HTML pages, downloaded and unpacked once into work/ (the PostgreSQL manual into
    work/pkg, as the benches have always had it; another package into work/pkg-<package>)."""
    root = work / ("pkg" if package == PACKAGE else f"pkg-{package}")
    html = root / HTML_DIRS[package]
    if not html.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        if subprocess.run(["apt-get", "download", package], cwd=work, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
        (deb,) = work.glob(f"{package}_*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    return sorted(html.rglob("*.html"))


def page_text(path: Path) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(path.read_text(errors="replace"), main_content=False)


def index_once(pipe, docs: list, work: Path) -> None:
    """Index the pool documents unless these very documents were indexed before under this index
    version (a marker file in work/), with a progress bar."""
    import json

    marker = work / f"indexed-{pipe.cfg.version('index')}.json"
    if marker.exists() and json.loads(marker.read_text()) == [d.doc_id for d in docs]:
        return
    index_all(pipe, docs, "index")
    marker.write_text(json.dumps([d.doc_id for d in docs]))


def index_all(pipe, docs: list, label: str) -> None:
    """The pipeline's index stage over the documents, 32 at a time, with a progress bar."""
    from rich.progress import Progress

    index = pipe.stage("index")
    with Progress() as progress:
        task = progress.add_task(label, total=len(docs))
        for i in range(0, len(docs), 32):
            index.process(docs[i : i + 32])
            progress.advance(task, len(docs[i : i + 32]))


def body_links(path: Path) -> list[tuple[str, str]]:
    """(target page file name, link text) of every link in the page's body, in order: links inside the
    navigation header and footer (div.navheader / div.navfooter, Prev Up Home Next) are chrome and
    left out, as are links to other sites and to the page itself."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.out: list[tuple[str, str]] = []
            self.divs: list[bool] = []  # for each open div: is it navigation?
            self.href: str | None = None
            self.text: list[str] = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "div":
                self.divs.append(a.get("class", "") in ("navheader", "navfooter"))
            elif tag == "a" and a.get("href") and not any(self.divs):
                self.href, self.text = a["href"], []

        def handle_endtag(self, tag):
            if tag == "div" and self.divs:
                self.divs.pop()
            elif tag == "a" and self.href is not None:
                target = self.href.split("#")[0]
                if target and "/" not in target and target != path.name:
                    self.out.append((target, " ".join("".join(self.text).split())))
                self.href = None

        def handle_data(self, data):
            if self.href is not None:
                self.text.append(data)

    parser = Links()
    parser.feed(path.read_text(errors="replace"))
    return parser.out


def link_spans(text: str, links: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Each link's text found in the page's plain text, in order: (start, end, target). A link whose
    text is not found after the previous one (extraction changed it) is left out."""
    import re

    out, at = [], 0
    for target, words in links:
        if not words:
            continue
        pattern = r"\s+".join(re.escape(w) for w in words.split())
        m = re.compile(pattern).search(text, at) or re.compile(pattern).search(text)
        if m:
            out.append((m.start(), m.end(), target))
            at = m.end() if m.start() >= at else at
    return out
