// Drives Mercato's /mcp with the official MCP TypeScript SDK
// (npm @modelcontextprotocol/sdk): Client + StreamableHTTPClientTransport.
//
// Usage: node mcp_client.mjs URL API_KEY   (run from target/clients, where
// scripts/fetch-clients installed the SDK). Prints one JSON document.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, key] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "mercato-test", version: "1.0.0" });
await client.connect(transport);

const seen = { protocol_version: transport.protocolVersion ?? null };
const tools = [];
let cursor;
for (let page = 0; page < 50; page++) {
  const listed = await client.listTools(cursor ? { cursor } : {});
  tools.push(...listed.tools);
  cursor = listed.nextCursor;
  if (!cursor) break;
}
seen.tools = tools.map((t) => t.name).sort();

const progress = [];
const convert = await client.callTool({
  name: "unit-converter__convert",
  arguments: { value: 1, from: "mi", to: "km" },
});
seen.convert = { isError: convert.isError ?? false, structured: convert.structuredContent, meta: convert._meta };

const summarize = await client.callTool(
  {
    name: "summarizer__summarize",
    arguments: { text: "Node speaks MCP. Every call has a price. The weather is nice. Prices come from fuel.", sentences: 2 },
    _meta: { "mercato/max_price_micros": 100000 },
  },
  undefined,
  { onprogress: (p) => progress.push(p.message ?? null) },
);
seen.summarize = { isError: summarize.isError ?? false, structured: summarize.structuredContent, meta: summarize._meta, progress };

// The caps in the request's own `_meta` (this client speaks the session revision).
const capped = await client.callTool({
  name: "summarizer__summarize",
  arguments: { text: "Capped in the request." },
  _meta: { "mercato/max_price_micros": 1 },
});
seen.capped = { isError: capped.isError ?? false, error: capped._meta?.["mercato/error"] ?? null };
const uncontracted = await client.callTool({
  name: "summarizer__summarize",
  arguments: { text: "Under no contract." },
  _meta: { "mercato/contract_id": "ctr_nobody" },
});
seen.unknown_contract = { isError: uncontracted.isError ?? false, error: uncontracted._meta?.["mercato/error"] ?? null };

const hostile = await client.callTool({ name: "misbehaver__panic", arguments: {} });
seen.hostile = { isError: hostile.isError ?? false, error: hostile._meta?.["mercato/error"] ?? null };

try {
  await client.callTool({ name: "nobody__nothing", arguments: {} });
  seen.unknown_tool = null;
} catch (e) {
  seen.unknown_tool = { code: e.code ?? null, message: String(e.message) };
}
await client.close();
console.log(JSON.stringify(seen));
