"""Each campaign iteration publishes its learning curve and parity plot where the Prefect UI shows them: a
markdown artifact ``<name>-plots`` with the PNGs inline as ``data:image/png;base64`` URIs (issue 23 §4).

The slow test runs a real campaign against a real Prefect server with its UI and opens the artifact page in
headless Debian Chromium (DevTools Protocol): the images must have decoded (``naturalWidth > 0``)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import missing
from tiny_campaign import tiny_campaign

from flows.artifacts import plots_markdown
from flows.store import CampaignStore

BIN = Path(sys.executable).parent
IMAGE = re.compile(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def test_plots_markdown_has_both_pngs_inline(tmp_path_factory):
    store = CampaignStore(tiny_campaign(tmp_path_factory))
    markdown = plots_markdown(store, "tiny", 1)
    images = IMAGE.findall(markdown)
    assert [alt for alt, _ in images] == ["learning curve, iteration 1", "parity, iteration 1"]
    for _, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(png) < 300_000
    assert "meV/atom" in markdown and "eV/Å" in markdown
    assert plots_markdown(store, "tiny", 7) is not None  # later iterations: the whole curve
    assert "iteration 0" in plots_markdown(store, "tiny", 0)


@pytest.mark.slow
def test_prefect_ui_renders_the_iteration_plots(tmp_path):
    from cdp import Browser, chromium
    from test_campaign import TINY

    from flows.server import start_server

    if chromium() is None:
        missing("chromium", "apt-get install chromium (Debian)")
    home = tmp_path / "prefect"
    server = start_server(home, ui=True, timeout_s=600)
    browser = None
    try:
        cfg = tmp_path / "ui.toml"
        cfg.write_text(TINY.format(name="ui-plots", iterations=1, executor="default", workers=1))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_API_URL=server.record.api_url, PESFLOW_HOME=str(tmp_path / "pesflow"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        run = subprocess.run([str(BIN / "pesflow"), "run", str(cfg), "--dir", str(tmp_path / "campaign"),
                              "--no-plots"], env=env, capture_output=True, text=True, timeout=900)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

        browser = Browser(tmp_path / "chromium-profile")
        browser.call("Page.enable")
        # the key's page lists its versions, newest first; open the newest (iteration 1) as a user would
        browser.goto(f"http://127.0.0.1:{server.record.port}/artifacts/key/ui-plots-plots")
        end = time.monotonic() + 120
        links = []
        while not links and time.monotonic() < end:
            time.sleep(1)
            links = browser.evaluate("Array.from(document.querySelectorAll('a[href*=\"/artifacts/artifact/\"]'))"
                                     ".map(a => a.href)")
        assert links, "the artifact key page lists no artifact"
        browser.goto(links[0])
        images = []
        while time.monotonic() < end:
            images = browser.evaluate("Array.from(document.images).filter(i => i.src.startsWith('data:image/png'))"
                                      ".map(i => ({alt: i.alt, width: i.naturalWidth, shown: i.clientWidth,"
                                      " done: i.complete}))")
            if len(images) >= 2 and all(i["done"] for i in images):
                break
            time.sleep(1)
        browser.screenshot(tmp_path / "artifact.png")
        assert [i["alt"] for i in images] == ["learning curve, iteration 1", "parity, iteration 1"], images
        assert all(i["width"] > 300 and i["shown"] > 0 for i in images), images
        text = browser.evaluate("document.body.innerText")
        assert "ui-plots: iteration 1" in text
    finally:
        if browser is not None:
            browser.close()
        server.stop()
