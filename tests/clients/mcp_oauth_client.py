"""Connects to Mercato's /mcp the standard way: the official MCP Python SDK's
OAuth client provider (discovery from the 401, dynamic registration, PKCE,
the authorization code, tokens), with this script playing the person in
between: it follows the authorization URL, signs in on the page with the
organisation's API key, and approves with a spending cap.

Usage: mcp_oauth_client.py URL API_KEY PER_CALL_UNITS DAILY_UNITS

Prints one JSON document of what it saw; the Rust test asserts on it and on
the books. Exits non-zero when the SDK itself fails.
"""

import asyncio
import html
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT_URI = "http://127.0.0.1:47123/callback"


class Memory:
    """Token storage in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Person:
    """Does in HTTP what a person does in a browser: sign in, read the
    consent page, approve with a cap."""

    def __init__(self, key: str, per_call: str, daily: str):
        self.key, self.per_call, self.daily = key, per_call, daily
        self.answer = None
        self.seen = {}

    async def redirect(self, authorization_url: str):
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as web:
            page = await web.get(authorization_url)
            # Not signed in: the page sends the person to sign in first.
            assert page.status_code in (302, 303), page.status_code
            signin = urljoin(authorization_url, page.headers["location"])
            self.seen["sign_in_first"] = urlparse(signin).path
            nxt = parse_qs(urlparse(signin).query)["next"][0]
            signed = await web.post(
                urljoin(authorization_url, "/signin"), data={"key": self.key, "next": nxt}
            )
            assert signed.status_code in (302, 303), signed.text
            consent_url = urljoin(authorization_url, signed.headers["location"])
            consent = await web.get(consent_url)
            assert consent.status_code == 200, consent.text
            self.seen["consent_csp"] = consent.headers.get("content-security-policy", "")
            self.seen["consent_mentions_client"] = "Mercato test agent" in consent.text
            self.seen["consent_scopes"] = sorted(set(re.findall(r"<strong>(discover|invoke)</strong>", consent.text)))
            fields = {
                html.unescape(name): html.unescape(value)
                for name, value in re.findall(
                    r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text
                )
            }
            fields.update(
                decision="approve", per_call_max=self.per_call, daily_max=self.daily
            )
            approved = await web.post(urljoin(authorization_url, "/oauth/authorize"), data=fields)
            assert approved.status_code in (302, 303), approved.text
            back = urlparse(approved.headers["location"])
            self.seen["redirected_to"] = f"{back.scheme}://{back.netloc}{back.path}"
            query = parse_qs(back.query)
            self.answer = AuthorizationCodeResult(
                code=query["code"][0],
                state=query.get("state", [None])[0],
                iss=query.get("iss", [None])[0],
            )

    async def callback(self):
        return self.answer


def outcome(result):
    meta = result.meta or {}
    return {
        "is_error": result.is_error,
        "error": meta.get("mercato/error"),
        "charged": (meta.get("mercato/settlement") or {}).get("charged_micros"),
    }


async def main(url: str, key: str, per_call: str, daily: str) -> dict:
    person = Person(key, per_call, daily)
    storage = Memory()
    auth = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="Mercato test agent",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=person.redirect,
        callback_handler=person.callback,
    )
    http = create_mcp_http_client(auth=auth)
    seen: dict = {}
    async with Client(streamable_http_client(url, http_client=http)) as client:
        tools = await client.list_tools()
        seen["tools"] = len(tools.tools)
        result = await client.call_tool(
            "unit-converter__convert", {"value": 10, "from": "km", "to": "m"}
        )
        seen["free"] = outcome(result)
        text = {"text": "Fuel is metered. Every call has a price. Prices come from fuel.", "sentences": 1}
        # Asks to hold more than the token's per-call cap.
        result = await client.call_tool(
            "summarizer__summarize", text, meta={"mercato/max_price_micros": 50000}
        )
        seen["over_per_call"] = outcome(result)
        # Held at the token's per-call cap: runs and is charged.
        result = await client.call_tool("summarizer__summarize", text)
        seen["paid"] = outcome(result)
        # Today's spending plus another hold at the cap passes the daily cap.
        result = await client.call_tool("summarizer__summarize", text)
        seen["over_daily"] = outcome(result)
    seen["person"] = person.seen
    seen["client_id"] = storage.client_info.client_id
    seen["token_endpoint_auth_method"] = storage.client_info.token_endpoint_auth_method
    seen["client_secret"] = storage.client_info.client_secret
    seen["scope"] = storage.tokens.scope
    seen["access_token"] = storage.tokens.access_token
    seen["refresh_token"] = storage.tokens.refresh_token
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5]))))
