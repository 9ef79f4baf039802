"""End to end, for real: the `report.html` of `examples/tailored:all`, opened in a headless
Chromium (Debian's `chromium`, pinned in third_party/system-packages.lock), renders its title,
bar charts and app results without console errors, and links only files next to it.

The kernel is packaged in the session's workspace, where test_tailored_e2e built it (a cache hit).
`browser_render` and `page_problems` are checked first on pages made to fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from tests.e2e.workspace import REPO

TARGET = "examples/tailored:all"
# Debian's chromium: headless, as root in a container (no sandbox), without a GPU.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-logging=stderr",
    "--v=0",
    "--hide-scrollbars",
)
# What Chromium logs on stderr for a page's console messages and uncaught exceptions.
CONSOLE_LINE = re.compile(r":CONSOLE[:(]|Uncaught")


def chromium() -> str:
    path = shutil.which("chromium", path="/usr/bin:/bin")
    if path is None:
        pytest.fail("chromium is missing: run third_party/setup.sh as root (it installs it)")
    return path


@dataclass
class BrowserRun:
    dom: str
    console: List[str]  # the stderr lines of console messages and uncaught exceptions


def browser_render(page: Path, screenshot: Optional[Path] = None) -> BrowserRun:
    """`page` opened in headless Chromium: its DOM after load, the console lines of that run
    and, with `screenshot`, of a second run that writes a PNG of the page there."""
    url = page.resolve().as_uri()
    runs = [[chromium(), *CHROMIUM_FLAGS, "--dump-dom", url]]
    if screenshot is not None:
        runs.append(
            [
                chromium(),
                *CHROMIUM_FLAGS,
                "--window-size=1000,2600",
                f"--screenshot={screenshot}",
                url,
            ]
        )
    dom, console = "", []
    for argv in runs:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        console += [ln for ln in proc.stderr.splitlines() if CONSOLE_LINE.search(ln)]
        dom = dom or proc.stdout
    return BrowserRun(dom, console)


class _Dom(HTMLParser):
    """The parts of a dumped DOM the checks read."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.svgs = 0
        self.bars: List[float] = []
        self.app_rows: List[List[str]] = []
        self.links: List[str] = []
        self.external: List[str] = []
        self._in: List[str] = []
        self._in_apps = False
        self._row: Optional[List[str]] = None

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        a: Dict[str, str] = {k: v or "" for k, v in attrs}
        self._in.append(tag)
        if tag == "svg" and "bars" in a.get("class", "").split():
            self.svgs += 1
        if tag == "rect" and "bar" in a.get("class", "").split():
            self.bars.append(float(a.get("width", "0")))
        if tag == "table" and a.get("id") == "app-results":
            self._in_apps = True
        if tag == "tr" and self._in_apps:
            self._row = []
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        for key in ("src", "href"):
            if re.match(r"[a-z]+:", a.get(key, "")):
                self.external.append(f"<{tag} {key}={a[key]}>")
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.external.append(f"<{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "table" and self._in_apps:
            self._in_apps = False
        if tag == "tr" and self._row is not None:
            self.app_rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title" and "svg" not in self._in:
            self.title += data
        if self._row is not None and self._in and self._in[-1] in ("td", "th", "code", "span"):
            self._row.append(data.strip())


def page_problems(run: BrowserRun, page: Path, title: str, apps: int) -> List[str]:
    """What is wrong with a rendered report: console errors, a missing title, no chart `<svg>`
    with bars, an app results table without a row per app, anything loaded from elsewhere, and
    links to files that are not next to `page`."""
    dom = _Dom()
    dom.feed(run.dom)
    problems = [f"console: {line}" for line in run.console]
    if dom.title.strip() != title:
        problems.append(f"title {dom.title.strip()!r}, expected {title!r}")
    if dom.svgs == 0:
        problems.append("no chart <svg class='bars'>")
    if not any(w > 0 for w in dom.bars):
        problems.append("the charts have no bars")
    rows = [r for r in dom.app_rows if r and r[0] != "app"]
    if len(rows) != apps:
        problems.append(f"the app results table has {len(rows)} rows, expected {apps}")
    problems += [f"loads from elsewhere: {e}" for e in dom.external]
    for href in dom.links:
        if not href.startswith("#") and not (page.parent / href).is_file():
            problems.append(f"link to a missing file: {href}")
    return problems


# --- the check itself, on pages made to fail ------------------------------------------------------

GOOD = """<!DOCTYPE html><html><head><title>Tailored kernel t</title></head><body>
<svg class="bars" width="100" height="20"><rect class="bar tailored" x="0" y="0" width="50"
height="9"/></svg><table id="app-results"><tr><th>app</th></tr><tr><td><code>a</code></td>
<td>passed</td></tr></table>{extra}</body></html>"""


def test_the_check_passes_a_good_page(tmp_path):
    page = tmp_path / "good.html"
    page.write_text(GOOD.format(extra=""))
    assert page_problems(browser_render(page), page, "Tailored kernel t", 1) == []


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("<script>undefinedFunction()</script>", "Uncaught ReferenceError"),
        ("<script>console.error('boom')</script>", '"boom"'),
        ('<a href="console.log">log</a>', "link to a missing file: console.log"),
        ('<img src="https://example.invalid/x.png">', "loads from elsewhere"),
    ],
)
def test_the_check_fails_a_broken_page(tmp_path, extra, expected):
    page = tmp_path / "broken.html"
    page.write_text(GOOD.format(extra=extra))
    problems = page_problems(browser_render(page), page, "Tailored kernel t", 1)
    assert any(expected in p for p in problems), problems


def test_the_check_fails_a_page_without_charts_or_apps(tmp_path):
    page = tmp_path / "empty.html"
    page.write_text("<!DOCTYPE html><html><head><title>x</title></head><body></body></html>")
    problems = page_problems(browser_render(page), page, "Tailored kernel t", 4)
    assert len(problems) == 4, problems  # title, svg, bars, app rows


# --- the real report --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def packaged(ws) -> Path:
    """The `all` kernel packaged in the session's workspace (test_tailored_e2e built it)."""
    done = ws.pants("package", TARGET, timeout=3000)
    assert done.returncode == 0, done.output[-8000:]
    return ws.root / "dist/examples.tailored/all"


def test_report_html_renders_in_chromium(packaged, tmp_path):
    page = packaged / "report.html"
    report = json.loads((packaged / "report.json").read_text())
    run = browser_render(page, screenshot=tmp_path / "report.png")
    problems = page_problems(run, page, f"Tailored kernel {TARGET}", len(report["apps"]))
    assert problems == [], problems
    assert (tmp_path / "report.png").stat().st_size > 10_000
    dom = _Dom()
    dom.feed(run.dom)
    assert dom.svgs >= 2  # top-level directories, and at least one big directory broken down
    for app in report["app_results"]:
        assert app["console_log"] and (packaged / app["console_log"]).is_file(), app
        assert app["console_log"] in dom.links


def test_report_html_is_rendered_from_report_json_alone(packaged, tmp_path):
    """The same report.json renders the same bytes, by the module the package step runs."""
    out = tmp_path / "out"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{REPO}:{REPO}/third_party/python/sandbox/site",
    }
    proc = subprocess.run(
        [
            "/usr/bin/python3",
            "-m",
            "kernel_rules.domain.compose.report",
            "--report",
            str(packaged / "report.json"),
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("report.html", "report.md"):
        assert (out / name).read_bytes() == (packaged / name).read_bytes(), name
