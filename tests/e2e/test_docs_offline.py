"""`/docs` works without internet access: the page and every asset it loads come from the API itself
(the packaged Swagger UI 5, which renders OpenAPI 3.1), and the page lists the operations. With
Debian's `chromium` installed, a headless browser loads the page with every other host unreachable."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.browser import chromium, dump_dom
from tests.support.database import sqlite_database
from tests.support.simulator import SimulatorProcess
from tests.support.stack import serving_api, stack_settings


@pytest.fixture(scope="module")
async def api(
    dev_server: str, sim: SimulatorProcess, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    settings = stack_settings(dev_server, sqlite_database(tmp_path_factory.mktemp("docs")), sim)
    async with serving_api(settings) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_the_docs_page_and_its_assets_are_served_by_the_api(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*['"]([^'"]+)['"]""", html)
    loaded = [first or second for first, second in urls]
    assert loaded, html
    assert not re.search(r"https?://", html), "the page names another host"
    for url in loaded:
        assert url.startswith("/"), url
        response = await api.get(url)
        assert response.status_code == 200, url
    js = await api.get("/docs/assets/swagger-ui-bundle.js")
    assert js.headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert "SwaggerUIBundle" in js.text[:2000] and len(js.content) > 500_000
    css = await api.get("/docs/assets/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css") and ".swagger-ui" in css.text
    assert "/openapi.json" in html and "SwaggerUIBundle(" in html
    schema = (await api.get("/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert "/v1/accounts/{account_id}/history" in schema["paths"]
    # Nothing of the package beyond what the page needs, and no CDN fallback page.
    for other in ("/docs/assets/index.html", "/docs/assets/swagger-ui-bundle.js.map", "/docs/assets/../__init__.py"):
        assert (await api.get(other)).status_code == 404, other
    assert (await api.get("/redoc")).status_code == 404


@pytest.mark.skipif(chromium() is None, reason="Debian's chromium is not installed")
async def test_a_headless_browser_renders_the_operations_with_no_other_host_reachable(api: httpx.AsyncClient) -> None:
    # Every host but the API's own is unreachable: a CDN fetch would fail the page.
    dom, err = await dump_dom(
        str(api.base_url.join("/docs")), "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", wall_seconds=120
    )
    assert 'class="swagger-ui"' in dom, (dom[:2000], err[-3000:])
