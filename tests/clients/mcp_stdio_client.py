"""Drives `mercato mcp-stdio` (the stdio bridge) with the official MCP Python
SDK's stdio transport, as a desktop client would.

Usage: mcp_stdio_client.py MERCATO_BINARY SERVER_URL API_KEY MODE
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError


async def main(binary: str, url: str, key: str, mode: str) -> dict:
    server = StdioServerParameters(
        command=binary, args=["mcp-stdio", "--server", url, "--api-key", key]
    )
    seen: dict = {}
    async with Client(server, mode=mode) as client:
        seen["protocol_version"] = client.session.protocol_version
        tools = (await client.list_tools()).tools
        seen["tools"] = sorted(t.name for t in tools)
        progress = []

        async def on_progress(value, total, message):
            progress.append(message)

        result = await client.call_tool(
            "summarizer__summarize",
            {"text": "Bridges relay. Every call has a price. Stdio is simple. Prices come from fuel.", "sentences": 1},
            progress_callback=on_progress,
        )
        seen["summarize"] = {
            "is_error": result.is_error,
            "structured": result.structured_content,
            "meta": result.meta,
            "progress": progress,
        }
        try:
            await client.call_tool("nobody__nothing", {})
            seen["unknown_tool"] = None
        except MCPError as e:
            seen["unknown_tool"] = {"code": e.code}
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5])), default=str))
