"""Drives Mercato's A2A front door with the official A2A Python SDK (PyPI
`a2a-sdk`): card, SendMessage, GetTask, CancelTask (twice), streaming,
negotiation, and a raw v0.3 request.

Usage: a2a_client.py BASE_URL API_KEY
Prints one JSON document of what it saw.
"""

import asyncio
import json
import sys
import uuid

import httpx
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, Message, Role, SendMessageRequest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Value


def message(data=None, text=None) -> SendMessageRequest:
    m = Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER)
    if data is not None:
        m.parts.add().data.CopyFrom(json_format.ParseDict(data, Value()))
    if text is not None:
        m.parts.add().text = text
    return SendMessageRequest(message=m)


def as_dict(proto) -> dict:
    return json_format.MessageToDict(proto)


async def collect(client, request) -> list:
    return [as_dict(event) async for event in client.send_message(request)]


async def main(base: str, key: str) -> dict:
    seen: dict = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        seen["card"] = (await http.get(f"{base}/.well-known/agent-card.json")).json()
        seen["capability_card"] = (
            await http.get(f"{base}/a2a/agents/unit-converter.convert/.well-known/agent-card.json")
        ).json()

        client = await create_client(base, client_config=ClientConfig(streaming=False, httpx_client=http))
        events = await collect(
            client,
            message({"capability_id": "unit-converter.convert", "input": {"value": 2, "from": "kg", "to": "g"}}),
        )
        seen["convert"] = events
        task_id = events[-1]["task"]["id"]
        seen["get_task"] = as_dict(await client.get_task(GetTaskRequest(id=task_id)))

        events = await collect(client, message({"capability_id": "misbehaver.panic", "input": {}}))
        seen["hostile"] = events[-1]

        events = await collect(client, message(text="convert kilograms to pounds"))
        seen["discover"] = events[-1]

        events = await collect(
            client,
            message({"action": "negotiate", "capability_id": "pii-redactor.redact",
                     "terms": {"max_price_micros": 3000, "validity_ms": 600000}}),
        )
        seen["negotiate"] = events[-1]
        answer = events[-1]["task"]["artifacts"][0]["parts"][0]["data"]
        contract_id = answer["negotiation"].get("contractId") or answer["negotiation"].get("contract_id")
        events = await collect(
            client,
            message({"capability_id": "pii-redactor.redact", "input": {"text": "mail jo@example.com"},
                     "contract_id": contract_id}),
        )
        seen["under_contract"] = {"contract_id": contract_id, "task": events[-1]}

        try:
            await collect(client, message({"capability_id": "nobody.nothing", "input": {}}))
            seen["unknown_capability"] = None
        except Exception as e:  # the SDK raises its mapped JSON-RPC error
            seen["unknown_capability"] = {"type": type(e).__name__, "message": str(e)}

        polling = await create_client(
            base, client_config=ClientConfig(streaming=False, polling=True, httpx_client=http)
        )
        events = await collect(polling, message({"capability_id": "misbehaver.sleep", "input": {}}))
        sleeping = events[-1]["task"]
        seen["sleeping"] = sleeping
        seen["cancel"] = as_dict(await polling.cancel_task(CancelTaskRequest(id=sleeping["id"])))
        try:
            await polling.cancel_task(CancelTaskRequest(id=sleeping["id"]))
            seen["cancel_again"] = None
        except Exception as e:
            seen["cancel_again"] = {"type": type(e).__name__, "message": str(e)}
        await asyncio.sleep(0.2)
        seen["cancelled_task"] = as_dict(await polling.get_task(GetTaskRequest(id=sleeping["id"])))
        try:
            await polling.get_task(GetTaskRequest(id="no-such-task"))
            seen["missing_task"] = None
        except Exception as e:
            seen["missing_task"] = {"type": type(e).__name__}

        streaming = await create_client(base, client_config=ClientConfig(streaming=True, httpx_client=http))
        seen["stream"] = await collect(
            streaming,
            message({"capability_id": "summarizer.summarize", "max_price_micros": 100000,
                     "input": {"text": "Agents stream. Every call has a price. The weather is nice. Prices come from fuel.",
                               "sentences": 2}}),
        )

        v03 = await http.post(f"{base}/a2a", json={
            "jsonrpc": "2.0", "id": 7, "method": "message/send",
            "params": {"message": {"kind": "message", "messageId": "m1", "role": "user",
                                   "parts": [{"kind": "data", "data": {"capability_id": "unit-converter.convert",
                                                                       "input": {"value": 1, "from": "m", "to": "cm"}}}]}},
        })
        seen["v03"] = v03.json()
        bad_version = await http.post(f"{base}/a2a", headers={"A2A-Version": "9.9"},
                                      json={"jsonrpc": "2.0", "id": 8, "method": "GetTask", "params": {"id": "x"}})
        seen["bad_version"] = bad_version.json()
    async with httpx.AsyncClient(timeout=30) as anonymous:
        response = await anonymous.post(f"{base}/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}})
        seen["anonymous_status"] = response.status_code
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2])), default=str))
