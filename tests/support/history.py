"""Every workflow history on a Temporal server, as text, for tests that assert a secret is absent.

`fetch_history` hands back the events as stored (encrypted payloads); this module decodes every
`Payload` in them with the client's codec and renders each decoded payload's data as UTF-8 text, so
`password not in await all_histories_text(client)` really checks what the workflows carried,
failure messages and stack traces (encoded attributes) included, and what ops see beside them:
workflow ids, search attributes (never encoded: the server indexes them) and memos.
"""

import base64
from dataclasses import dataclass, field

from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, SearchAttributes
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.client import Client


@dataclass
class HistoryDump:
    """All histories: `decoded` (JSON, then each decoded payload's data as text), `raw` (JSON and each
    stored payload's bytes as they are) and the `encoding` metadata of every stored payload."""

    decoded: str = ""
    raw: str = ""
    encodings: list[str] = field(default_factory=list)  # of the codec's payloads (not search attributes)
    workflow_types: set[str] = field(default_factory=set)


def _payload_fields(message: Message) -> list[Payload]:
    """Every Payload inside `message` the codec sees, in place (so decoding them rewrites the message):
    all but those of search attributes."""
    found: list[Payload] = []
    for descriptor, value in message.ListFields():
        if descriptor.message_type is SearchAttributes.DESCRIPTOR:
            continue
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            values = list(value.values())
            if descriptor.message_type.fields_by_name["value"].message_type is None:
                continue
        elif descriptor.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            if isinstance(item, Payload):
                found.append(item)
            else:
                found.extend(_payload_fields(item))
    return found


def _patch_marker(event: HistoryEvent) -> bool:
    return event.HasField("marker_recorded_event_attributes") and (
        event.marker_recorded_event_attributes.marker_name == "core_patch"
    )


def _data_text(payloads: list[Payload]) -> str:
    return "\n".join(p.data.decode(errors="replace") for p in payloads)


async def dump_histories(client: Client, query: str | None = None) -> HistoryDump:
    """Every run the client's namespace lists (or those `query` selects), as stored and decoded."""
    dump = HistoryDump()
    codec = client.data_converter.payload_codec
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        dump.workflow_types.add(execution.workflow_type)
        described = await handle.describe()
        seen = f"{execution.id}\n{described.typed_search_attributes}\n{await described.memo()}\n"
        dump.raw += seen
        dump.decoded += seen
        history = History(events=(await handle.fetch_history()).events)
        stored = _payload_fields(history)
        # A `workflow.patched` marker's details (the patch id, a constant of the code) are written by the
        # SDK's core past the codec: every other payload must be ciphertext.
        coded = [p for event in history.events if not _patch_marker(event) for p in _payload_fields(event)]
        dump.encodings += [p.metadata.get("encoding", b"").decode() for p in coded]
        dump.raw += json_format.MessageToJson(history) + "\n" + _data_text(stored) + "\n"
        dump.raw += "\n".join(base64.b64encode(p.data).decode() for p in stored) + "\n"
        if codec is not None:
            decoded = await codec.decode(stored)
            for target, plain in zip(stored, decoded, strict=True):
                target.CopyFrom(plain)
        dump.decoded += json_format.MessageToJson(history) + "\n" + _data_text(stored) + "\n"
    return dump


async def all_histories_text(client: Client, query: str | None = None) -> str:
    """Every workflow's history (or those `query` selects), its payloads decoded with the client's
    codec, as searchable text."""
    return (await dump_histories(client, query)).decoded
