"""Check a built mkdocs site: every link, image, script and anchor inside it resolves.

    mkdocs build -d site && python docs/check_site.py site
    python docs/check_site.py site --browser chromium     # + the maths renders in a browser

Reads every ``.html`` file under the site folder and checks that each ``href``/``src``
pointing inside the site names an existing file (a folder means its ``index.html``) and,
when it has a ``#fragment``, an element with that ``id`` on the target page. Links to other
sites (``http:``, ``https:``, ``mailto:``, ``data:``) are not followed: the site must work
offline, so they are listed separately and only reported. Exit status 1 when anything
inside the site is broken. Standard library only.

With ``--browser``, the site is also served on localhost and every page is loaded in that
headless Chromium (``--dump-dom``, no network beyond localhost): each formula that
``pymdownx.arithmatex`` marked, and each ``$...$`` of a notebook's markdown cells, must have
become a MathJax ``mjx-container``, with no MathJax error node.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

__all__ = ["Problem", "SiteReport", "check_rendering", "check_site", "notebook_formulas"]

_LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "source": "src"}


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name"):
            if values.get(key):
                self.ids.add(str(values[key]))
        attr = _LINK_ATTRS.get(tag)
        if attr and values.get(attr):
            self.links.append((tag, str(values[attr])))


@dataclass(frozen=True)
class Problem:
    """One broken reference: the page it is on, the URL, and why."""

    page: str
    url: str
    reason: str

    def __str__(self) -> str:
        return f"{self.page}: {self.url} ({self.reason})"


@dataclass
class SiteReport:
    """What :func:`check_site` found."""

    pages: int = 0
    links: int = 0
    problems: list[Problem] = field(default_factory=list)
    external: set[str] = field(default_factory=set)


def _target_file(site: Path, page: Path, path: str) -> Path:
    base = PurePosixPath("/" + page.relative_to(site).as_posix()).parent
    resolved = PurePosixPath(path) if path.startswith("/") else base / path
    parts: list[str] = []
    for part in resolved.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    target = site.joinpath(*parts)
    if path.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target


def check_site(site: str | Path) -> SiteReport:
    """Check every internal reference of the HTML pages under ``site``.

    Args:
        site: the folder ``mkdocs build`` wrote.

    Returns:
        A :class:`SiteReport`; ``problems`` is empty when every reference resolves.

    Raises:
        FileNotFoundError: ``site`` holds no ``index.html``.
    """
    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no index.html: is it a built site?")
    parsed: dict[Path, _PageParser] = {}
    for page in sorted(site.rglob("*.html")):
        parser = _PageParser()
        parser.feed(page.read_text(encoding="utf-8"))
        parsed[page] = parser
    report = SiteReport(pages=len(parsed))
    for page, parser in parsed.items():
        name = page.relative_to(site).as_posix()
        for _tag, url in parser.links:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc:
                if parts.scheme not in ("javascript",):
                    report.external.add(url)
                continue
            report.links += 1
            path, fragment = unquote(parts.path), unquote(parts.fragment)
            target = _target_file(site, page, path) if path else page
            if not target.is_file():
                report.problems.append(Problem(name, url, "no such file"))
                continue
            if fragment and target.suffix == ".html":
                if target not in parsed:
                    parsed[target] = _PageParser()
                    parsed[target].feed(target.read_text(encoding="utf-8"))
                if fragment not in parsed[target].ids:
                    report.problems.append(Problem(name, url, "no element with this id"))
    return report


_BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
)


_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


class _NotebookText(HTMLParser):
    """The text nodes of a notebook page's markdown cells (mkdocs-jupyter), outside code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, in a markdown cell, in code)
        self.nodes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            return
        markdown, code = self.stack[-1][1:] if self.stack else (False, False)
        classes = (dict(attrs).get("class") or "").split()
        markdown = markdown or "jp-MarkdownOutput" in classes
        self.stack.append((tag, markdown, code or tag in ("code", "pre")))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][1] and not self.stack[-1][2]:
            self.nodes.append(data)


def notebook_formulas(html: str) -> int:
    """How many ``$...$`` and ``$$...$$`` formulas the markdown cells of a notebook page hold.

    The same rule as ``markNotebookMaths`` in ``javascripts/mathjax-config.js``, which wraps
    each of them for MathJax: per text node, outside ``code`` and ``pre``.
    """
    parser = _NotebookText()
    parser.feed(html)
    return sum(len(re.findall(r"\$\$[\s\S]+?\$\$|\$[^$]+?\$", node)) for node in parser.nodes)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check_rendering(
    site: str | Path, browser: str = "chromium", pages: list[str] | None = None
) -> list[Problem]:
    """Load pages in a headless browser; check that each formula was typeset.

    Args:
        site: the folder ``mkdocs build`` wrote.
        browser: a Chromium executable.
        pages: paths of the pages to load, relative to ``site``; default every page.

    Returns:
        One :class:`Problem` per page whose formulas did not all render.
    """
    site = Path(site).resolve()
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    problems = []
    try:
        chosen = sorted(site.rglob("*.html")) if pages is None else [site / p for p in pages]
        for page in chosen:
            name = page.relative_to(site).as_posix()
            html = page.read_text(encoding="utf-8")
            marked = html.count('class="arithmatex"') + notebook_formulas(html)
            if not marked:
                continue
            url = f"http://127.0.0.1:{server.server_address[1]}/{name}"
            with tempfile.TemporaryDirectory() as profile:
                dom = subprocess.run(
                    [browser, *_BROWSER_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout
            rendered = dom.count("<mjx-container")
            errors = len(re.findall(r'<g [^>]*data-mml-node="merror"', dom))
            if rendered != marked or errors:
                reason = f"{marked} formulas, {rendered} typeset, {errors} MathJax errors"
                problems.append(Problem(name, url, reason))
    finally:
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the folder mkdocs built")
    parser.add_argument("--browser", help="also check the maths renders in this Chromium")
    args = parser.parse_args(argv)
    report = check_site(args.site)
    if args.browser:
        report.problems += check_rendering(args.site, args.browser)
    for problem in report.problems:
        print(f"BROKEN {problem}")
    for url in sorted(report.external):
        print(f"external (not followed): {url}")
    print(
        f"{report.pages} pages, {report.links} internal links, "
        f"{len(report.problems)} broken, {len(report.external)} external"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
