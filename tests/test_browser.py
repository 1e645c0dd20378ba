"""The chat panel and hostile output in a real browser: JupyterLab on loopback, Debian's
Chromium driven by Playwright (no browser download). Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import xss_corpus
from tests.fakeprovider import sse
from tests.xss_payloads import PAYLOADS

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS = Path(__file__).parent.parent / "docs"
TOKEN = "test-token"
CHROMIUM = "/usr/bin/chromium"

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip("needs Debian's chromium (make test installs it)", allow_module_level=True)


def api(lab, method, path, body=None):
    request = urllib.request.Request(
        lab["url"] + path,
        body and json.dumps(body).encode(),
        {"Authorization": f"token {TOKEN}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or "null")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, _server):
    base = tmp_path_factory.mktemp("jlab")
    env = dict(
        os.environ,
        JUPYTER_PLATFORM_DIRS="1",
        IPYCHAT_BASE_URL=_server.url,
        IPYCHAT_MODEL="fake-model",
        IPYCHAT_API_KEY="sk-ipychat-BROWSER-5e4d3c2b1a",
    )
    for var in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"]:
        env[var] = str(base / var)
        (base / var).mkdir()
    settings = base / "JUPYTER_CONFIG_DIR/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    (base / "root").mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(base / "server.log", "w")  # noqa: SIM115 (open for the server's lifetime)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={base / 'root'}",
            f"--IdentityProvider.token={TOKEN}",
            "--ServerApp.allow_root=True",
            "--LabApp.expose_app_in_browser=True",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab = {"url": f"http://127.0.0.1:{port}"}
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, (
            base / "server.log"
        ).read_text()
        try:
            api(lab, "GET", "/api/status")
            break
        except OSError:
            time.sleep(0.1)
    yield lab
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


@pytest.fixture
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser.new_page(viewport={"width": 1280, "height": 900})
        browser.close()
    for session in api(lab, "GET", "/api/sessions"):
        api(lab, "DELETE", f"/api/sessions/{session['id']}")


READY = """(path) => { const w = window.jupyterapp?.shell.currentWidget;
  const k = w?.sessionContext?.session?.kernel; return !!w?.context?.isReady
    && w.context.path === path && k?.status === 'idle' && k.connectionStatus === 'connected'; }"""


def open_notebook(page, lab, path, cells):
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {
                "id": f"c{i}",
                "cell_type": "code",
                "source": c,
                "metadata": {},
                "outputs": [],
                "execution_count": None,
            }
            for i, c in enumerate(cells)
        ],
    }
    api(lab, "PUT", f"/api/contents/{path}", {"type": "notebook", "content": nb})
    page.goto(f"{lab['url']}/lab/tree/{path}?reset&token={TOKEN}")
    page.wait_for_function(READY, arg=path, polling=100, timeout=60_000)


def run_all(page):
    assert (
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')") is True
    )


def run_cell(page, index):
    page.evaluate(
        """(i) => { const app = window.jupyterapp;
        app.shell.currentWidget.content.activeCellIndex = i;
        return app.commands.execute('notebook:run-cell'); }""",
        index,
    )


def shot(page, locator, name):
    ARTIFACTS.mkdir(exist_ok=True)
    locator.screenshot(path=str(ARTIFACTS / name))
    return ARTIFACTS / name


def test_panel_streams_other_cells_run_and_stop_takes_effect(page, lab, fake) -> None:
    open_notebook(
        page,
        lab,
        "panel.ipynb",
        [
            "import ipychat\npanel = ipychat.ChatPanel()\npanel",
            "counter = globals().get('counter', 0) + 1\nprint('other cell run', counter)",
        ],
    )
    run_all(page)
    panel = page.locator(".ipychat-panel")
    panel.wait_for(timeout=30_000)
    page.get_by_text("other cell run 1").wait_for(timeout=30_000)
    fake.push(sse([f"word{i} " for i in range(120)], delay=0.1))
    page.locator(".ipychat-panel-prompt textarea").fill("Tell me a long story")
    page.locator(".ipychat-panel-send").click()
    page.wait_for_function(
        "() => document.querySelector('.ipychat-panel').innerText.includes('word5')", timeout=20_000
    )
    run_cell(page, 1)  # the kernel is idle while the panel streams
    page.get_by_text("other cell run 2").wait_for(timeout=10_000)
    assert not fake.requests[-1].finished.is_set()  # still streaming when the cell ran
    shot(page, panel, "panel-streaming.png")
    clicked = time.monotonic()
    page.locator(".ipychat-panel-stop").click()
    assert fake.requests[-1].finished.wait(5)
    assert fake.requests[-1].closed_early
    assert fake.requests[-1].ended - clicked < 0.5 + 0.3  # + the click's own round trip
    page.locator(".ipychat-panel-status").get_by_text("stopped").wait_for(timeout=5_000)
    text = panel.inner_text()
    assert "word0" in text and "word110" not in text
    path = shot(page, panel, "panel-stopped.png")
    DOCS.mkdir(exist_ok=True)
    shutil.copy(path, DOCS / "chat-panel.png")


def push_hostile(fake, payload: str, step: int) -> None:
    """Two answers: `payload` streamed `step` characters at a time, then whole, as reasoning
    and answer both."""
    fake.push(
        sse([payload[i : i + step] for i in range(0, len(payload), step)]),
        sse([payload], reasoning=[payload]),
    )


def test_hostile_model_output_never_runs_in_the_page(page, lab, fake) -> None:
    push_hostile(fake, "\n\n".join(PAYLOADS), 7)
    open_notebook(
        page,
        lab,
        "xss.ipynb",
        [
            "%load_ext ipychat",
            "%%chat\nshow me the payloads",
            "%%chat -m fake-reasoner\nand with reasoning",
            "import ipychat\nipychat.ChatPanel()",
        ],
    )
    run_all(page)
    page.locator(".ipychat-panel").wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # give any injected handler the chance to fire
    assert page.evaluate("() => window.__pwned") is None
    cells = page.locator(".jp-Notebook .jp-Cell")
    assert "window.__pwned=1" in cells.nth(1).inner_text()  # shown as text, not run
    shot(page, cells.nth(1), "xss-cell.png")


TRAPS = """for (const name of ['alert', 'confirm', 'prompt', 'print']) {
  window[name] = (...args) => { window.__pwned = `${name}(${args.join(',')})`; };
}"""


@pytest.mark.skipif(not xss_corpus.load(), reason="the XSS corpus (../shared) is not here")
def test_a_sample_of_the_xss_corpus_never_runs_in_the_page(page, lab, fake) -> None:
    """120 answers drawn from the 791 (every source in it), streamed in pieces and whole, with
    alert, confirm, prompt and print trapped: none may fire."""
    page.add_init_script(TRAPS)
    push_hostile(fake, "\n\n".join(case["payload"] for case in xss_corpus.sample(120)), 11)
    open_notebook(
        page,
        lab,
        "xss-corpus.ipynb",
        ["%load_ext ipychat", "%%chat\nthe corpus", "%%chat -m fake-reasoner\nagain, reasoning"],
    )
    run_all(page)
    page.locator(".ipychat-reply").nth(1).wait_for(timeout=30_000)
    page.wait_for_timeout(1500)  # time for an injected handler to fire
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.querySelectorAll('.jp-OutputArea script').length") == 0
    shot(page, page.locator(".jp-Notebook .jp-Cell").nth(1), "xss-corpus-cell.png")
    # The traps were armed: a call now is caught, so the None above means nothing fired.
    assert page.evaluate("() => { alert('probe'); return window.__pwned; }") == "alert(probe)"


def test_highlighted_code_has_no_strip_behind_its_lines(page, lab, fake) -> None:
    answer = "Here:\n\n```python\ndef f(n):\n    return n * 2\n```\n\nand `inline`."
    fake.push(sse([answer]))
    open_notebook(page, lab, "code.ipynb", ["%load_ext ipychat", "%%chat\nsome code"])
    run_all(page)
    code = page.locator(".ipychat-reply pre code").first
    code.wait_for(timeout=30_000)
    background = code.evaluate("(e) => getComputedStyle(e).backgroundColor")
    padding = code.evaluate("(e) => getComputedStyle(e).paddingLeft")
    assert background in ("rgba(0, 0, 0, 0)", "transparent") and padding == "0px", background
    shot(page, page.locator(".jp-Notebook .jp-Cell").nth(1), "code-cell.png")
