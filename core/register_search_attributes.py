"""Register the ops search attributes on a Temporal server that does not have them yet.

`make run` and the dev server in tests register them as the server starts; on another server (the
Compose file's, your own) run `python -m core.register_search_attributes` once, as the `migrate` step
does. (What they are is `contracts.search_attributes`.)
"""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts.search_attributes import ALL_KEYS
from core.settings import get_settings
from core.temporal import connect, run_client_script


async def register_search_attributes(client: Client) -> list[str]:
    """Add those of `ALL_KEYS` the client's namespace lacks; returns the names added."""
    namespace = client.namespace
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        known = set(listed.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()  # the time-skipping test server only adds
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in ALL_KEYS if key.name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return list(missing)


async def main() -> None:
    settings = get_settings()
    added = await register_search_attributes(await connect(settings.temporal))
    print(f"search attributes added: {', '.join(added)}" if added else "search attributes: all registered")


if __name__ == "__main__":
    run_client_script(main())
