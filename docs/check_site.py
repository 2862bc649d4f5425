"""Check the built site offline: every internal link resolves, and (when chromium is
installed) the pages render in a headless browser.

    python -m sphinx -W --keep-going -b html docs docs/_build/html
    python docs/check_site.py [BUILD_DIR] [--screenshots DIR]

Every ``href`` and ``src`` of every built HTML page that is not an external address
(``http:``, ``https:``, ``mailto:``, ``data:`` ...) must name a file of the build, and a
``#fragment`` must name an ``id`` (or ``name``) on the page it points to. External links
are not checked: the check needs no network (Sphinx's ``-b linkcheck`` would).

With chromium on the PATH (Debian: ``apt-get install chromium``) it also loads the index
page and an API page headless and checks that each screenshot is a non-blank PNG; with
``--screenshots DIR`` it keeps them there (``site_index.png``, ``site_api.png``). Without
chromium that step is skipped and says so. Exit status 1 lists every broken link.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DOCS = Path(__file__).resolve().parent
EXTERNAL = ("http", "https", "mailto", "data", "javascript", "ftp", "tel")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        for key in ("id", "name") if tag != "meta" else ():
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None and not (tag == "link" and key == "href"
                                                    and attrs.get("rel") == "canonical"):
                self.links.append(attrs[key])


def _parse(path: Path, cache: dict) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


def broken_links(root: Path) -> tuple[list[str], int]:
    """``(problems, links checked)`` for every internal link of the site under ``root``."""
    cache: dict = {}
    problems, checked = [], 0
    for page_path in sorted(root.rglob("*.html")):
        for link in _parse(page_path, cache).links:
            parts = urlsplit(link)
            if parts.scheme in EXTERNAL or parts.netloc or link.startswith("//"):
                continue
            checked += 1
            target = page_path if not parts.path else (page_path.parent / unquote(parts.path))
            target = target.resolve()
            where = f"{page_path.relative_to(root)}: {link!r}"
            if root.resolve() not in (target, *target.parents):
                problems.append(f"{where} points outside the site")
            elif target.is_dir():
                if not (target / "index.html").is_file():
                    problems.append(f"{where} is a folder without index.html")
            elif not target.is_file():
                problems.append(f"{where} names no file")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target, cache).ids:
                    problems.append(f"{where}: no id {parts.fragment!r} in "
                                    f"{target.relative_to(root.resolve())}")
    return problems, checked


def _png_is_not_blank(path: Path) -> bool:
    """A PNG whose decoded pixels are not all one value (a rendered page, not an empty one)."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, idat = 8, b""
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw[len(raw) // 4: len(raw) // 4 + 200_000])) > 8


def screenshots(root: Path, keep: Path | None) -> list[str]:
    """Render the index and an API page headless; problems found (none: rendered)."""
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    if browser is None:
        print("check_site: no chromium on the PATH, skipping the browser check")
        return []
    out = keep or Path(tempfile.mkdtemp(prefix="graphpool-site-"))
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, page in (("site_index.png", "index.html"), ("site_api.png", "api.html")):
        shot = out / name
        shot.unlink(missing_ok=True)
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--screenshot={shot}", "--window-size=1280,1600",
               (root / page).resolve().as_uri()]
        try:
            subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            problems.append(f"{page}: chromium timed out")
            continue
        if not shot.is_file() or not _png_is_not_blank(shot):
            problems.append(f"{page}: no screenshot, or a blank one ({shot})")
        else:
            print(f"check_site: {page} rendered -> {shot}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", type=Path, default=DOCS / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="keep the browser screenshots in this folder")
    parser.add_argument("--no-browser", action="store_true", help="skip the chromium step")
    args = parser.parse_args(argv)
    if not (args.build / "index.html").is_file():
        print(f"check_site: {args.build}/index.html missing; build the site first")
        return 1
    problems, checked = broken_links(args.build)
    print(f"check_site: {checked} internal links checked, {len(problems)} broken")
    if not args.no_browser:
        problems += screenshots(args.build, args.screenshots)
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
