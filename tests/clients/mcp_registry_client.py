"""A client that knows only a registry: it finds an agent through the
generic MCP registry API (`/v0/servers`), connects to the remote endpoint
the listing names with the official MCP Python SDK, authorizes with OAuth
(this script plays the person, as in mcp_oauth_client.py) and calls a tool.

Usage: mcp_registry_client.py REGISTRY_URL API_KEY SEARCH

Prints one JSON document of what it saw.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import OAuthClientMetadata

from mcp_oauth_client import REDIRECT_URI, Memory, Person


async def main(registry: str, key: str, search: str) -> dict:
    seen: dict = {}
    async with httpx2.AsyncClient(timeout=30) as http:
        listed = (
            await http.get(f"{registry}/v0/servers", params={"search": search, "version": "latest"})
        ).json()
    server = listed["servers"][0]["server"]
    seen["name"] = server["name"]
    remote = next(r for r in server["remotes"] if r["type"] == "streamable-http")
    seen["remote"] = remote["url"]
    person = Person(key, "", "")
    storage = Memory()
    auth = OAuthClientProvider(
        server_url=remote["url"],
        client_metadata=OAuthClientMetadata(
            client_name="Registry-only client",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect,
        callback_handler=person.callback,
    )
    async with Client(
        streamable_http_client(remote["url"], http_client=create_mcp_http_client(auth=auth))
    ) as client:
        tools = await client.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        result = await client.call_tool(seen["tools"][0], {"value": 3, "from": "km", "to": "m"})
        seen["call"] = {"is_error": result.is_error, "structured": result.structured_content}
    seen["access_token"] = storage.tokens.access_token
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
