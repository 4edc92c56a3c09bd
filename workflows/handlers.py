"""An update handler declared from its ref in contracts.workflows: registered under the ref's name, and
typed so that the handler must answer the ref's result type. (The SDK's own `workflow.update(name=...)`
types an async handler as answering a coroutine, which callers holding the method would then see.)"""

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.workflows import UpdateRef

P = ParamSpec("P")
Out = TypeVar("Out")


def update(
    ref: UpdateRef[Any, Out],
) -> Callable[[Callable[P, Awaitable[Out]]], workflow.UpdateMethodMultiParam[P, Out]]:
    def declare(handler: Callable[P, Awaitable[Out]]) -> workflow.UpdateMethodMultiParam[P, Out]:
        return cast(workflow.UpdateMethodMultiParam[P, Out], workflow.update(name=ref.name)(handler))

    return declare
