"""Prometheus metrics for the API: requests by method, route template and status, and their latency,
served at `GET /metrics` (no key: it is bound where the API is, and carries no business data)."""

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("api_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("api_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"])
# Label values come from fixed sets only, so no request can create a new time series: a path no
# route matched, and a method HTTP does not define, are counted under OTHER.
OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


class MetricsMiddleware:
    """Counts and times every HTTP request under its route's template (`/v1/orders/{order_id}`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # what the client sees if the app fails before answering
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")  # set by the router on the scope it was given
            template = getattr(route, "path", OTHER)
            method = method_label(scope["method"])
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
            REQUESTS.labels(method, template, str(status)).inc()


def install_metrics(app: FastAPI, before_scrape: Callable[[], Awaitable[None]] | None = None) -> None:
    """Add the middleware and `GET /metrics` to `app`; `before_scrape` brings figures counted elsewhere
    up to date before each answer."""
    app.add_middleware(MetricsMiddleware)

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics() -> Response:
        if before_scrape is not None:
            await before_scrape()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# Delivery reports of code SMS by the status they report: five label values at most.
SMS_DELIVERY_REPORTS = Counter(
    "sms_delivery_reports_total", "SMS delivery reports received from the gateway, by reported status", ["status"]
)
