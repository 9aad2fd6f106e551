"""`repro report`: the page of `make tiny`'s results, rendered in a real headless Chromium.

Chromium (Debian's `chromium`, installed by .ci/run) loads the page from a file with every
request sent through a recording proxy on 127.0.0.1: the page must make none (a control page
with one remote image must make one, so the recorder is known to see the page's requests).
Chromium itself calls its own services even for a blank page, whatever the flags (component
updates at update.googleapis.com, accounts.google.com, the time service at clients2.google.com):
requests to those hosts are the browser's and are left out. The
screenshot must not be blank, the console must log no error, and the DOM (--dump-dom) must
hold the comparison rows and the diagnosis verdicts. Without Chromium the browser test skips.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.e2e  # trains the tiny runs (session fixture) and starts a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class RecordingProxy:
    """Accepts connections on 127.0.0.1 and records each request line (GET http://..., CONNECT ...)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    line = "(unreadable request)"
                if line:  # a connection closed before a byte was sent fetched nothing (a preconnect)
                    self.requests.append(line)

    def close(self) -> None:
        self.server.close()


def chromium(page: Path, proxy: RecordingProxy, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--enable-logging=stderr", "--v=0",
        f"--proxy-server=http://127.0.0.1:{proxy.port}", "--proxy-bypass-list=<-loopback>",
        "--window-size=1200,1600", *args, page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


BROWSER_SERVICES = ("google.com", "googleapis.com")  # hosts Chromium calls on its own


def host(request_line: str) -> str:
    """The host of a proxied request line: `GET http://host/path ...` or `CONNECT host:443 ...`."""
    target = request_line.split(" ")[1] if " " in request_line else request_line
    return target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]


def page_requests(requests: list[str]) -> list[str]:
    return [
        r for r in requests if not any(host(r) == s or host(r).endswith("." + s) for s in BROWSER_SERVICES)
    ]


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tiny_results, tmp_path_factory) -> Path:
    page = tmp_path_factory.mktemp("report") / "report.html"
    proc = run_cli("report", str(tiny_results), "-o", str(page), check=True)
    assert str(page) in proc.stdout
    return page


def test_report_is_self_contained(report, tiny_results, cli):
    text = report.read_text()
    # nothing fetched from anywhere: no remote URL in any attribute or stylesheet
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "url(" not in text and "@import" not in text
    assert text.count('src="data:image/png;base64,') == 3  # the comparison plot and two runs' curves
    for method in ("simpo", "dpo"):
        assert f"<td>tiny</td><td>{method}</td><td>AE2 WR</td><td>band 60-100</td>" in text
    markdown = cli("report", str(tiny_results), "--format", "markdown", check=True).stdout
    assert "| tiny | simpo | AE2 WR | band 60-100 |" in markdown and "| generation | ok |" in markdown


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    proxy = RecordingProxy()
    try:
        # control: a page with one remote image is seen by the recorder
        control = tmp_path / "control.html"
        control.write_text('<html><body><img src="http://example.invalid/pixel.png"></body></html>')
        chromium(control, proxy, "--dump-dom")
        assert [host(r) for r in page_requests(proxy.requests)] == ["example.invalid"], proxy.requests
        proxy.requests.clear()

        shot = tmp_path / "report.png"
        rendered = chromium(report, proxy, f"--screenshot={shot}")
        dom = chromium(report, proxy, "--dump-dom")
    finally:
        proxy.close()
    assert page_requests(proxy.requests) == []  # the page made no network request
    assert console_errors(rendered.stderr) == [] and console_errors(dom.stderr) == []
    # the screenshot is not blank: many distinct colours, not one flat background
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50
    # the DOM holds the comparison rows and every check's verdict for both runs
    html = dom.stdout
    rows = re.findall(
        r'<tr class="(\w+)" data-status="([^"]+)"><td>tiny</td><td>(\w+)</td><td>([^<]+)</td>', html
    )
    assert {(m, metric, status) for _, status, m, metric in rows} >= {
        ("simpo", "AE2 WR", "within"), ("dpo", "AE2 WR", "within"),
        ("simpo", "Arena-Hard", "within"), ("dpo", "Arena-Hard", "within"),
    }  # fmt: skip
    assert all(cls == "ok" for cls, status, _, _ in rows if status == "within")
    verdicts = re.findall(r'data-check="(\w+)"><td>\w+</td><td class="verdict">(\w+)</td>', html)
    assert len(verdicts) == 12 and {v for _, v in verdicts} == {"ok"}
