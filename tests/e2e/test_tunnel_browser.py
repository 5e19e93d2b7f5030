"""The tunnel in headless Debian chromium on the local runtime: a page whose assets, links and
redirects use absolute paths works through a host-routed tunnel (`NAME.localhost`), and a cookie
set through one tunnel is not visible to another (host routing: separate origins; path routing:
cookies scoped to the tunnel's prefix)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scripts.local.ports import free_port_base as free_ports
from scripts.local.runtime import LocalRuntime
from tests.e2e.tunnel_support import AgentProcess, call, new_token, tunnel_runtime

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGE = b"""<!doctype html><html><head><title>home</title>
<link rel="stylesheet" href="/static/site.css"><script src="/static/app.js" defer></script></head>
<body><p id="js">no script</p><a id="next" href="/next">next</a> <a id="login" href="/login">login</a></body></html>"""


UNTRUSTED = b"""<b id="injected">bold</b><img src="/nothing" onerror="document.title='pwned'">"""


class Site:
    """A small web app that, like most, writes absolute paths everywhere."""

    def __init__(self) -> None:
        self.hits: list[str] = []  # every request target the app served, in order
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, status: int, ctype: str, body: bytes, extra: list[tuple[str, str]] = []) -> None:  # noqa: B006
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                for name, value in extra:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                site.hits.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/untrusted":  # markup that would run if a page injected it
                    return self._reply(200, "text/html", UNTRUSTED)
                if parts.path == "/data.json":
                    return self._reply(200, "application/json", b'{"a":1,"b":[1,2]}')
                if parts.path == "/":
                    return self._reply(200, "text/html", PAGE)
                if parts.path == "/static/site.css":
                    return self._reply(200, "text/css", b"body { color: rgb(0, 128, 0); }")
                if parts.path == "/static/app.js":
                    return self._reply(200, "text/javascript", b"document.getElementById('js').textContent = 'ran';")
                if parts.path == "/next":
                    return self._reply(200, "text/html", b"<title>next</title><p id='where'>next page</p>")
                if parts.path == "/login":  # redirects to an absolute path, as login pages do
                    return self._reply(302, "text/plain", b"", [("Location", "/next?from=login")])
                if parts.path == "/set":
                    value = parse_qs(parts.query)["v"][0]
                    cookie = f"tunnelcookie={value}; Path=/"
                    return self._reply(200, "text/html", b"<p>set</p>", [("Set-Cookie", cookie)])
                if parts.path == "/show":
                    seen = self.headers.get("Cookie", "")
                    return self._reply(200, "text/plain", f"cookie=[{seen}]".encode())
                return self._reply(404, "text/plain", b"not here")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    yield from tunnel_runtime()


@pytest.fixture(scope="module")
def tunnels(runtime: LocalRuntime) -> Iterator[dict[str, str]]:
    site = Site()
    agents = {
        name: AgentProcess(runtime, new_token(runtime), site.port, "--subdomain", name) for name in ("alpha", "beta")
    }
    try:
        yield {name: agent.wait_url() for name, agent in agents.items()}
    finally:
        for agent in agents.values():
            agent.stop()
        site.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_absolute_assets_links_and_redirects_work_through_a_host_tunnel(tunnels, page) -> None:
    base = tunnels["alpha"]
    assert urlsplit(base).hostname == "alpha.localhost"
    page.goto(f"{base}/")
    page.wait_for_function("document.getElementById('js').textContent === 'ran'", timeout=10000)
    assert page.evaluate("getComputedStyle(document.body).color") == "rgb(0, 128, 0)"
    page.click("#next")
    page.wait_for_selector("#where")
    assert page.url == f"{base}/next"
    page.goto(f"{base}/")
    page.click("#login")
    page.wait_for_selector("#where")
    assert page.url == f"{base}/next?from=login"


def test_a_cookie_set_by_one_host_tunnel_is_not_visible_to_another(tunnels, page) -> None:
    alpha, beta = tunnels["alpha"], tunnels["beta"]
    page.goto(f"{alpha}/set?v=alpha-secret")
    assert "alpha-secret" in page.evaluate("document.cookie")
    page.goto(f"{alpha}/show")
    assert "tunnelcookie=alpha-secret" in page.inner_text("body")
    page.goto(f"{beta}/show")
    assert page.inner_text("body") == "cookie=[]"
    assert page.evaluate("document.cookie") == ""


def test_a_cookie_set_through_one_path_tunnel_stays_in_its_prefix(runtime, tunnels, page) -> None:
    api = runtime.outputs["Tunnel-dev"]["HttpApiUrl"]
    page.goto(f"{api}/t/alpha/set?v=path-secret")  # the app says Path=/; the tunnel scopes it to /t/alpha
    page.goto(f"{api}/t/alpha/show")
    assert "tunnelcookie=path-secret" in page.inner_text("body")
    page.goto(f"{api}/t/beta/show")
    assert page.inner_text("body") == "cookie=[]"
    # Path routing keeps the absolute link inside the tunnel too (the redirect is rewritten).
    page.goto(f"{api}/t/alpha/login")
    page.wait_for_selector("#where")
    assert page.url == f"{api}/t/alpha/next?from=login"


# --- the agent's request inspector in the browser -------------------------------------------------


@pytest.fixture(scope="module")
def inspected(runtime: LocalRuntime) -> Iterator[tuple[Site, str, str]]:
    site = Site()
    port = free_ports(1)
    agent = AgentProcess(runtime, new_token(runtime), site.port, "--subdomain", "gamma", "--inspect-port", str(port))
    try:
        public = agent.wait_url()
        yield site, public, f"http://127.0.0.1:{port}"
    finally:
        agent.stop()
        site.close()


def test_a_request_through_the_tunnel_shows_in_the_inspector_as_text(inspected, page) -> None:
    site, public, inspector = inspected
    assert call(f"{public}/untrusted?x=1").status == 200
    assert site.hits[-1] == "/untrusted?x=1"
    page.goto(f"{inspector}/")
    row = page.locator("#list li", has_text="/untrusted?x=1").first
    row.wait_for(timeout=10000)
    assert row.locator(".method").inner_text() == "GET" and row.locator(".status").inner_text() == "200"
    row.click()
    body = page.locator("#response pre.body")
    body.wait_for()
    assert body.inner_text() == UNTRUSTED.decode()  # shown as text ...
    assert page.locator("#injected").count() == 0  # ... never as markup
    assert page.title() == "Tunnel inspector"
    assert page.locator("#request td", has_text="gamma.localhost").count() == 1  # the request's Host header


def test_replay_in_the_inspector_hits_the_local_app_again(inspected, page) -> None:
    site, public, inspector = inspected
    assert call(f"{public}/untrusted?replay=1").status == 200
    page.goto(f"{inspector}/")
    page.locator("#list li", has_text="/untrusted?replay=1").first.click()
    page.locator("#replay").wait_for()
    before = site.hits.count("/untrusted?replay=1")
    page.click("#replay")
    result = page.locator("#replay-result")
    result.filter(has_text="Replayed #").wait_for(timeout=10000)
    assert site.hits.count("/untrusted?replay=1") == before + 1
    assert "200" in result.inner_text()
    # The replay is the newest entry, selected, and says what it replays.
    assert "replay of #" in page.locator("#meta").inner_text()
    assert page.locator("#list li").first.locator(".target").inner_text() == "/untrusted?replay=1"


def test_json_bodies_are_indented_in_the_inspector(inspected, page) -> None:
    _site, public, inspector = inspected
    assert call(f"{public}/data.json").status == 200
    page.goto(f"{inspector}/")
    page.locator("#list li", has_text="/data.json").first.click()
    body = page.locator("#response pre.body")
    body.wait_for()
    assert body.inner_text() == '{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}'
