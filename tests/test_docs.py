"""The documentation site: it builds with warnings as errors, and every page it builds holds
up when opened.

The build (``mkdocs build --strict`` into a temporary directory) runs once per module. Then:

- every HTML page parses, has a title and a main content of real text;
- every local link, image, stylesheet and script a page references exists in the built site,
  and every ``#anchor`` into a page of the site names an element of that page;
- no page loads anything from another host (the site works offline);
- the generated pages are complete: every sub-command's ``--help``, one tutorial per script
  in ``examples/`` with its figure;
- the README's relative links point at files of the repository;
- every page renders in headless Chromium (through Playwright): no JavaScript error, no
  failed request, the content visible and every image decoded. Skipped, with the reason,
  when Playwright or a Chromium is not installed (``.ci/run`` installs both).

Skipped as a whole when the ``docs`` extra is not installed (``pip install -e ".[docs]"``).
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

for _module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
    pytest.importorskip(_module, reason=f"the docs extra is not installed ({_module} missing: "
                                        "pip install -e '.[docs]')")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.py"))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built with ``--strict`` from the repository's mkdocs.yml: once per test
    session, also when pytest-xdist spreads these tests over several workers (the first
    worker builds into the session's shared temporary directory, under a lock; the others
    wait for it and read the same site)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent  # the session's, not the worker's
        out = shared / "docs-site"
        with open(shared / "docs-site.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out / "index.html").exists():
                _build(out)
        return out
    out = tmp_path_factory.mktemp("site")
    _build(out)
    return out


def _build(out: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"


class _Page(HTMLParser):
    """What the checks need from one HTML page: title, ids, references, main text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.assets: list[tuple[str, str]] = []  # loaded by the browser: img, script, css
        self.main_text: list[str] = []
        self.prose: list[str] = []  # main text outside code: where Markdown must be rendered
        self._in_title = False
        self._article_depth = 0
        self._skip_depth = 0
        self._code_depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if "name" in a and tag == "a":
            self.ids.add(a["name"])
        if tag == "title":
            self._in_title = True
        if tag in ("pre", "code"):
            self._code_depth += 1
        if tag == "article":
            self._article_depth += 1
        elif self._article_depth and tag in ("script", "style"):
            self._skip_depth += 1
        if tag == "a" and a.get("href"):
            self.refs.append((tag, a["href"]))
        if tag in ("img", "script") and a.get("src"):
            self.refs.append((tag, a["src"]))
            self.assets.append((tag, a["src"]))
        if tag == "link" and a.get("href"):
            self.refs.append((tag, a["href"]))
            if a.get("rel") in ("stylesheet", "icon", "preload"):
                self.assets.append((tag, a["href"]))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in ("pre", "code") and self._code_depth:
            self._code_depth -= 1
        if tag == "article" and self._article_depth:
            self._article_depth -= 1
        elif self._article_depth and tag in ("script", "style") and self._skip_depth:
            self._skip_depth -= 1

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._article_depth and not self._skip_depth:
            self.main_text.append(data)
            if not self._code_depth:
                self.prose.append(data)


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _pages(site: Path) -> list[Path]:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 30, f"only {len(pages)} pages built"
    return pages


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith(("mailto:", "data:"))


def test_every_page_parses_with_title_and_content(site):
    for path in _pages(site):
        page = _parse(path)
        rel = path.relative_to(site)
        assert page.title.strip(), f"{rel}: no <title>"
        text = " ".join(" ".join(page.main_text).split())
        if rel.name == "404.html":
            continue
        assert len(text) >= 200, f"{rel}: main content has {len(text)} characters: {text!r}"


def test_no_markdown_is_left_unrendered(site):
    """A list that Python-Markdown did not see (it wants a blank line before a list and 4
    spaces of nesting, where GitHub takes 2) shows up as prose lines starting with "- ", a
    table as lines of "|---|"."""
    leftovers = []
    for path in _pages(site):
        prose = "".join(_parse(path).prose)
        for line in prose.splitlines():
            if re.match(r"\s*([-*]|\d+\.) \S", line) or re.match(r"\s*\|\s*-{3,}", line):
                leftovers.append(f"{path.relative_to(site)}: {line.strip()[:80]}")
    assert not leftovers, "\n".join(leftovers)


def test_every_local_reference_exists(site):
    broken = []
    for path in _pages(site):
        page = _parse(path)
        for tag, url in page.refs:
            if not _local(url) or url.startswith("#") and tag == "a":
                if url.startswith("#") and url[1:] and unquote(url[1:]) not in page.ids:
                    broken.append(f"{path.relative_to(site)}: <{tag}> {url}: no such anchor")
                continue
            parts = urlsplit(url)
            # 404.html is served for any missing path, so its references start at the root
            start = site if parts.path.startswith("/") else path.parent
            target = (start / unquote(parts.path).lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or site.resolve() not in target.parents:
                broken.append(f"{path.relative_to(site)}: <{tag}> {url}: not in the site")
                continue
            if parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target).ids:
                    broken.append(f"{path.relative_to(site)}: <{tag}> {url}: no such anchor")
    assert not broken, "\n".join(broken)


def test_nothing_is_loaded_from_another_host(site):
    remote = [f"{path.relative_to(site)}: <{tag}> {url}"
              for path in _pages(site) for tag, url in _parse(path).assets if not _local(url)]
    assert not remote, "\n".join(remote)


def test_generated_pages_are_complete(site):
    from ppl_ident.cli import COMMANDS

    cli = site / "reference" / "cli.html"
    text = cli.read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f"usage: ppl-ident {name}" in text, f"the CLI page lacks `ppl-ident {name} --help`"
    assert "--help" in text and "--out" in text
    for name in EXAMPLES:
        page = site / "tutorials" / f"{name}.html"
        assert page.is_file(), f"examples/{name}.py has no tutorial page"
        body = page.read_text(encoding="utf-8")
        assert "What it shows" in body and "The script" in body, f"{name}: page incomplete"
        figure = ROOT / "examples" / "figures" / f"{name}.png"
        if figure.exists():
            assert f"assets/examples/{name}.png" in body, f"{name}: its figure is not shown"
    log = (site / "benchmarks" / "log.html").read_text(encoding="utf-8")
    assert "Latest results" in log
    api = (site / "reference" / "api" / "workflow.html").read_text(encoding="utf-8")
    assert 'id="ppl_ident.workflow.fit_model"' in api, "the API reference lacks fit_model"


def test_readme_links_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text)
    assert links, "the README links to no page"
    missing = [u for u in links if _local(u) and not u.startswith("#")
               and not (ROOT / unquote(urlsplit(u).path)).exists()]
    assert not missing, f"README links to missing files: {missing}"
    # the two set-up commands stay as they were
    assert ('python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/ppl-ident demo'
            in text)
    assert ('python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && '
            '.venv/bin/python -m pytest -q' in text)


# --- in a real browser ---------------------------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


#: what the browser shows of a page, in one round trip: the title, whether the main content
#: is laid out and visible, its text length, and the images that did not decode
_SEEN = """() => {
  const article = document.querySelector("article");
  const box = article ? article.getBoundingClientRect() : null;
  return {
    title: document.title,
    visible: !!box && box.width > 0 && box.height > 0
             && getComputedStyle(article).visibility !== "hidden",
    text: article ? article.innerText.trim().length : 0,
    broken: Array.from(document.images)
                 .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
  };
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_every_page_renders_in_a_headless_browser(site):
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (the docs extra has it)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium found (Debian: apt-get install chromium; .ci/run installs it)")

    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems: list[str] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                # no host but this one resolves: a request elsewhere fails, and is reported
                # as a failed request (the site must work offline)
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
            page = browser.new_page()
            current = {"url": ""}
            page.on("pageerror", lambda e: problems.append(f"{current['url']}: error {e}"))
            page.on("console", lambda m: m.type == "error" and problems.append(
                f"{current['url']}: console {m.text}"))
            # a request the next navigation cancels (the favicon, say) is not a fault
            page.on("requestfailed", lambda r: r.failure != "net::ERR_ABORTED" and
                    problems.append(f"{current['url']}: request failed {r.url}: {r.failure}"))
            page.on("response", lambda r: r.status >= 400 and problems.append(
                f"{current['url']}: HTTP {r.status} {r.url}"))
            for path in _pages(site):
                rel = path.relative_to(site).as_posix()
                current["url"] = rel
                page.goto(base + rel, wait_until="load")
                seen = page.evaluate(_SEEN)
                if not seen["title"].strip():
                    problems.append(f"{rel}: empty title in the browser")
                if rel != "404.html" and (not seen["visible"] or seen["text"] < 200):
                    problems.append(f"{rel}: main content not visible or nearly empty")
                problems += [f"{rel}: image not decoded: {src}" for src in seen["broken"]]
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert not problems, "\n".join(problems)
