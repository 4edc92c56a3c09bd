"""A Kannel `sendsms` endpoint in front of the simulator's sink that misbehaves on demand: it hands each
message on, then answers late (past the adapter's timeout) or not until released (its caller dies)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Request, Response

from tests.support.net import free_port
from tests.support.stack import serving


@dataclass
class SlowGateway:
    url: str = ""
    received: int = 0  # messages handed on to the sink
    delay: float = 0.0  # seconds to wait before answering
    released: asyncio.Event = field(default_factory=asyncio.Event)  # answers wait for it while clear
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set on each message handed on

    async def until_received(self, count: int, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while self.received < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def slow_gateway(sink_url: str) -> AsyncIterator[SlowGateway]:
    gateway = SlowGateway()
    gateway.released.set()
    app = FastAPI()

    @app.post("/cgi-bin/sendsms")
    async def sendsms(request: Request) -> Response:
        async with httpx.AsyncClient() as sink:
            # Kannel's POST form: the text is the body, everything else is in X-Kannel-* headers.
            passed = {k: v for k, v in request.headers.items() if k == "content-type" or k.startswith("x-kannel-")}
            answer = await sink.post(sink_url, content=await request.body(), headers=passed)
        gateway.received += 1
        gateway.arrived.set()
        await asyncio.sleep(gateway.delay)
        await gateway.released.wait()
        return Response(answer.content, status_code=answer.status_code)

    async with serving(app, free_port()) as base_url:
        gateway.url = f"{base_url}/cgi-bin/sendsms"
        try:
            yield gateway
        finally:
            gateway.released.set()
