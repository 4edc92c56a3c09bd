"""The codec server the Temporal UI decodes with, served on a real socket and called as the UI's browser
calls it (the codec itself, key rotation and who may decode without signing in: tests/unit/test_codec.py)."""

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from codec_server.app import LOGIN_MAX_BYTES
from codec_server.auth import SESSION_COOKIE, LoginThrottle
from tests.support.codec_server import (
    NEW,
    OLD,
    TOKEN,
    UI,
    UI_HEADERS,
    UI_PREFLIGHT,
    as_json,
    codec_settings,
    payload_of,
    plain_values,
    serving_codec_server,
)


@pytest.fixture(scope="module")
async def codec_url() -> AsyncIterator[str]:
    async with serving_codec_server(codec_settings()) as url:
        yield url


async def test_the_codec_server_refuses_a_call_without_credentials(codec_url: str) -> None:
    payload = await payload_of(OLD, "hidden")
    async with httpx.AsyncClient(base_url=codec_url) as http:
        anonymous = await http.post("/decode", json=as_json(payload), headers={"Origin": UI})
        wrong = await http.post("/decode", json=as_json(payload), headers={"Authorization": "Bearer nope"})
        encode = await http.post("/encode", json=as_json(payload))
    assert anonymous.status_code == 401 and wrong.status_code == 401 and encode.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert b"hidden" not in anonymous.content
    # The UI can read the refusal (CORS headers on errors too) and tell the operator.
    assert anonymous.headers["access-control-allow-origin"] == UI


async def test_the_codec_server_decodes_for_a_bearer_token_old_keys_included(codec_url: str) -> None:
    payloads = [await payload_of(OLD, "old secret"), await payload_of(NEW, "new secret")]
    async with httpx.AsyncClient(base_url=codec_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        decoded = await http.post("/decode", json=as_json(*payloads), headers={"X-Namespace": "default"})
        assert decoded.status_code == 200
        assert plain_values(decoded.json()) == [b'"old secret"', b'"new secret"']
        assert decoded.json()["payloads"][0]["metadata"]["encoding"] == base64.b64encode(b"json/plain").decode()

        # /encode is the inverse, under the current key: what the UI sends when an operator signals.
        plain = decoded.json()
        encoded = await http.post("/encode", json=plain)
        assert [p["metadata"]["encryption-key-id"] for p in encoded.json()["payloads"]] == ["bmV3"] * 2  # "new"
        again = await http.post("/decode", json=encoded.json())
        assert plain_values(again.json()) == plain_values(plain)


async def test_bad_bodies_and_unknown_keys_are_4xx_problems(codec_url: str) -> None:
    unknown = await payload_of("gone:" + base64.urlsafe_b64encode(b"g" * 32).decode(), "lost")
    async with httpx.AsyncClient(base_url=codec_url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        not_json = await http.post("/decode", content=b"{not json", headers={"Content-Type": "application/json"})
        lost = await http.post("/decode", json=as_json(unknown))
    assert not_json.status_code == 400
    assert lost.status_code == 422 and "'gone'" in lost.json()["detail"]


async def test_cors_preflight_answers_only_the_ui_origins(codec_url: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,x-namespace"}
    async with httpx.AsyncClient(base_url=codec_url) as http:
        ui = await http.options("/decode", headers={"Origin": UI, **preflight})
        other = await http.options("/decode", headers={"Origin": "http://evil.example", **preflight})
        simple = await http.post("/decode", json={"payloads": []}, headers={"Origin": "http://evil.example"})
    assert ui.status_code == 200
    assert ui.headers["access-control-allow-origin"] == UI
    assert ui.headers["access-control-allow-credentials"] == "true"
    assert "x-namespace" in ui.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_a_browser_session_from_login_decodes_and_a_forged_cookie_does_not(codec_url: str) -> None:
    payload = await payload_of(NEW, "for operators only")
    async with httpx.AsyncClient(base_url=codec_url) as browser:
        assert (await browser.get("/login")).status_code == 200
        refused = await browser.post("/login", data={"token": "guess"})
        assert refused.status_code == 401 and SESSION_COOKIE not in browser.cookies
        signed_in = await browser.post("/login", data={"token": TOKEN})
        assert signed_in.status_code == 200
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN not in cookie
        decoded = await browser.post("/decode", json=as_json(payload), headers={"Origin": UI})
        assert decoded.status_code == 200 and plain_values(decoded.json()) == [b'"for operators only"']
        assert decoded.headers["access-control-allow-credentials"] == "true"

        expires = browser.cookies[SESSION_COOKIE].split(".")[0]
        browser.cookies.set(SESSION_COOKIE, f"{expires}.{'0' * 64}")
        assert (await browser.post("/decode", json=as_json(payload))).status_code == 401
        browser.cookies.set(SESSION_COOKIE, f"1.{'0' * 64}")  # long expired
        assert (await browser.post("/decode", json=as_json(payload))).status_code == 401


async def test_in_development_the_ui_decodes_from_loopback_without_sign_in() -> None:
    payload = await payload_of(NEW, "shown at once")
    async with (
        serving_codec_server(codec_settings(environment="development")) as url,
        httpx.AsyncClient(base_url=url) as ui,
    ):
        preflight = await ui.options("/decode", headers=UI_PREFLIGHT)
        decoded = await ui.post("/decode", json=as_json(payload), headers=UI_HEADERS)
        # A page on another name that resolves to 127.0.0.1 (DNS rebinding) still has to sign in.
        rebound = await ui.post("/decode", json=as_json(payload), headers={"Host": "rebind.example:8234"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == UI
    assert decoded.status_code == 200 and plain_values(decoded.json()) == [b'"shown at once"']
    assert decoded.headers["access-control-allow-origin"] == UI
    assert rebound.status_code == 401


async def test_sign_in_bodies_are_capped_and_attempts_limited_per_address() -> None:
    # A window long enough that no attempt is regained while the test runs: the limit is what is tested.
    settings = codec_settings(codec_server_login_limit=4, codec_server_login_window_seconds=3600)
    async with serving_codec_server(settings) as url, httpx.AsyncClient(base_url=url) as browser:
        # A body larger than a form holding a token is refused unread, declared or streamed.
        huge = await browser.post("/login", content=b"token=" + b"x" * LOGIN_MAX_BYTES)
        assert huge.status_code == 413 and SESSION_COOKIE not in browser.cookies

        async def streamed() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield b"x" * 1024

        unsized = await browser.post("/login", content=streamed())
        assert unsized.status_code == 413
        assert (await browser.post("/login", data={"token": "guess"})).status_code == 401
        assert (await browser.post("/login", data={"token": TOKEN})).status_code == 200
        # Four attempts spent (refused ones count): the fifth is refused before the token is looked at.
        limited = await browser.post("/login", data={"token": TOKEN})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")
        # Decoding with the session already given is not limited.
        payload = await payload_of(NEW, "still decoded")
        assert (await browser.post("/decode", json=as_json(payload))).status_code == 200


def test_the_sign_in_limit_regains_attempts_over_its_window_and_forgets_old_addresses() -> None:
    throttle = LoginThrottle(limit=2, window_seconds=1.0, max_addresses=2)
    assert [throttle.take("a", now=0.0), throttle.take("a", now=0.0)] == [0.0, 0.0]
    assert throttle.take("a", now=0.0) == 0.5  # one attempt regained every half second
    assert throttle.take("b", now=0.0) == 0.0  # another address has its own attempts
    assert throttle.take("a", now=0.5) == 0.0
    throttle.take("c", now=0.5)  # a third address: the least recently seen ("b") is forgotten
    assert throttle.take("b", now=0.5) == 0.0 and throttle.take("b", now=0.5) == 0.0
