"""Writes the JSON Schema of every event and an AsyncAPI 3.0 document, generated from the code.

python -m contracts.export <out_dir>      (what `make contracts` runs)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contracts.envelope import REGISTRY, Envelope
from contracts.topics import ALL_TOPICS


def event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema of the full envelope carrying that payload."""
    schemas: dict[str, dict[str, Any]] = {}
    for (type_, version), payload_cls in sorted(REGISTRY.items()):
        schema = Envelope[payload_cls].model_json_schema(mode="serialization")  # type: ignore[valid-type]
        schema["title"] = f"{type_} v{version}"
        schema["description"] = (payload_cls.__doc__ or "").strip()
        schema["properties"]["type"]["const"] = type_
        schema["properties"]["version"]["const"] = version
        schema["x-topic"] = payload_cls.topic
        schemas[f"{type_}.v{version}.json"] = schema
    return schemas


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        channel_messages = {}
        for (type_, version), payload_cls in sorted(REGISTRY.items()):
            if payload_cls.topic != topic.name:
                continue
            name = f"{type_.replace('.', '_')}_v{version}"
            messages[name] = {
                "name": type_,
                "title": f"{type_} v{version}",
                "summary": payload_cls.summary,
                "contentType": "application/json",
                "bindings": {"kafka": {"key": {"type": "string", "description": "conversation or aggregate id"}}},
                "payload": {"$ref": f"schemas/{type_}.v{version}.json"},
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channel_id = topic.name.replace(".", "_")
        channels[channel_id] = {
            "address": topic.name,
            "description": topic.description,
            "bindings": {"kafka": {"topic": topic.name, "partitions": topic.partitions}},
            "messages": channel_messages,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in channel_messages],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Support platform events",
            "version": "1.0.0",
            "description": "Every command and event on Kafka. Each message is a JSON envelope "
            "(event_id, type, version, occurred_at, tenant_id, conversation_id, correlation_id, "
            "causation_id, payload); the Kafka key is the conversation (or aggregate) id. "
            "Delivery is at least once: consumers deduplicate on event_id.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:59092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render() -> dict[str, str]:
    """Relative path → file content, for writing and for the staleness test."""
    files = {
        f"schemas/{name}": json.dumps(schema, indent=2, sort_keys=True) + "\n"
        for name, schema in event_schemas().items()
    }
    files["asyncapi.json"] = json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"
    return files


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "docs/contracts")
    files = render()
    for old in (out / "schemas").glob("*.json") if (out / "schemas").exists() else []:
        if f"schemas/{old.name}" not in files:
            old.unlink()
    for relative, content in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    print(f"wrote {len(files)} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
