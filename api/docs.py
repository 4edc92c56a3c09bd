"""`/docs`: Swagger UI served from the packaged copy (`swagger-ui-bundle-v2`), so it works on a host with
no internet access (billing systems often run so); FastAPI's default page loads it from a CDN."""

import os

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"
# Only what the page loads: the bundle's other files (its own index page, source maps) are not served.
_SERVED = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")


class _Assets(StaticFiles):
    """The packaged Swagger UI files the page needs, and nothing else of the package."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in _SERVED:
            return "", None
        return super().lookup_path(path)


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and its assets; the app must be built with `docs_url=None` and `redoc_url=None`."""
    app.mount(ASSETS, _Assets(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
