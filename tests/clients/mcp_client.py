"""Drives Mercato's /mcp with the official MCP Python SDK (PyPI `mcp`).

Usage: mcp_client.py URL API_KEY MODE   (MODE: auto | legacy)

Prints one JSON document of what it saw; the Rust test asserts on it and on
the books. Exits non-zero when the SDK itself fails.
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


async def error_of(call):
    try:
        await call
    except MCPError as e:
        return {"code": e.code, "message": e.message}
    return None


async def main(url: str, key: str, mode: str) -> dict:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
    transport = streamable_http_client(url, http_client=http)
    seen: dict = {}
    async with Client(transport, mode=mode) as client:
        seen["protocol_version"] = client.session.protocol_version
        tools, cursor, pages = [], None, 0
        while True:
            page = await client.list_tools(cursor=cursor)
            pages += 1
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor or pages > 50:
                break
        seen["pages"] = pages
        seen["tools"] = sorted(t.name for t in tools)
        convert = next(t for t in tools if t.name == "unit-converter__convert")
        seen["convert_schema_required"] = sorted(convert.input_schema.get("required", []))
        seen["convert_has_output_schema"] = convert.output_schema is not None

        result = await client.call_tool(
            "unit-converter__convert", {"value": 10, "from": "km", "to": "m"}
        )
        seen["convert"] = {
            "is_error": result.is_error,
            "structured": result.structured_content,
            "text": [c.text for c in result.content if c.type == "text"],
            "meta": result.meta,
        }

        progress = []

        async def on_progress(value, total, message):
            progress.append({"progress": value, "message": message})

        result = await client.call_tool(
            "summarizer__summarize",
            {"text": "Fuel is metered. Every call has a price. The weather is nice. Prices come from fuel.", "sentences": 2},
            progress_callback=on_progress,
            meta={"mercato/max_price_micros": 100000},
        )
        seen["summarize"] = {
            "is_error": result.is_error,
            "structured": result.structured_content,
            "meta": result.meta,
            "progress": progress,
        }

        result = await client.call_tool(
            "summarizer__summarize",
            {"text": "Too cheap to run.", "_meta": {"mercato/max_price_micros": 10}},
        )
        seen["capped"] = {"is_error": result.is_error, "error": (result.meta or {}).get("mercato/error")}

        # The same caps in the request's own `_meta`, on either transport.
        result = await client.call_tool(
            "summarizer__summarize", {"text": "Capped in the request."}, meta={"mercato/max_price_micros": 1}
        )
        seen["capped_request"] = {"is_error": result.is_error, "error": (result.meta or {}).get("mercato/error")}
        result = await client.call_tool(
            "summarizer__summarize", {"text": "Under no contract."}, meta={"mercato/contract_id": "ctr_nobody"}
        )
        seen["unknown_contract"] = {"is_error": result.is_error, "error": (result.meta or {}).get("mercato/error")}

        result = await client.call_tool("misbehaver__panic", {})
        seen["hostile"] = {"is_error": result.is_error, "error": (result.meta or {}).get("mercato/error")}

        seen["unknown_tool"] = await error_of(client.call_tool("nobody__nothing", {}))
        seen["invalid_arguments"] = await error_of(
            client.call_tool("unit-converter__convert", {"value": "ten"})
        )

        result = await client.call_tool("discover", {"need": "convert miles to kilometres", "limit": 3})
        seen["discover"] = result.structured_content
        result = await client.call_tool("quote", {"capability_id": "summarizer__summarize"})
        seen["quote"] = result.structured_content
    return seen


if __name__ == "__main__":
    url, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    print(json.dumps(asyncio.run(main(url, key, mode)), default=str))
