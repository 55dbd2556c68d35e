"""/docs renders its operations in a real browser with no network: Swagger UI's files come
from the API itself (fastapi-offline), not from a CDN.

Headless Chromium (Debian's package) loads the page with every host name but 127.0.0.1
unresolvable, runs its scripts, and the rendered DOM is read back. The same browser on
FastAPI's stock /docs (the benchmark's bare app), which loads Swagger UI from a CDN, renders
nothing: the check can tell the difference.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bankops.bench import bare_app
from bankops.processes import Service, free_port

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "chromium"
# Rendered by Swagger UI for each operation: its path, in a span of this class.
OPERATION = 'class="opblock-summary-path"'


def rendered_dom(url: str) -> str:
    """The page's DOM after its scripts ran, in a browser that can reach 127.0.0.1 only."""
    with tempfile.TemporaryDirectory(prefix="bank-docs-chromium-") as profile:
        done = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}",
             # No network: every name but the API's address fails to resolve.
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=15000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_docs_render_every_operation_offline(live_server):
    dom = rendered_dom(f"{live_server.url}/docs")
    assert dom.count(OPERATION) >= 10, "Swagger UI did not render the operations"
    for tag in ("accounts", "transactions", "transfers", "health"):
        assert f'id="operations-tag-{tag}"' in dom, f"no {tag} section"


def test_a_cdn_docs_page_renders_nothing_offline(tmp_path):
    """The control: FastAPI's stock /docs, whose Swagger UI is on a CDN."""
    port = free_port()
    app = Service("bare app", [sys.executable, str(Path(bare_app.__file__))],
                  log_path=tmp_path / "bare.log", env={"PORT": str(port)},
                  ready_url=f"http://127.0.0.1:{port}/def", timeout=60)
    with app:
        html = rendered_dom(f"http://127.0.0.1:{port}/docs")
    assert "cdn.jsdelivr.net" in html  # it does ask for the CDN
    assert OPERATION not in html
