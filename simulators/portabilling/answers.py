"""The shapes of PortaBilling's answers the JSON API is built from: the public examples in `fixtures/`
(each file names its source in `_source`; `fixtures/README.md`). A handler takes a copy of an example
and puts the simulated object's values in it, so the fields, their spelling and what is left out are
the examples', not the service's models."""

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def example(name: str, *path: str) -> Any:
    """A fresh copy of the example at `path` in `fixtures/<name>.json`."""
    found: Any = _load(name)
    for part in path:
        found = found[int(part)] if isinstance(found, list) else found[part]
    return copy.deepcopy(found)


def session_faults() -> dict[str, str]:
    """The session faults, code → text."""
    return {f["faultcode"]: f["faultstring"] for f in example("session_faults", "faults")}


def account_info(values: dict[str, Any], *, hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`account_info` as the example spells it, with `values`; the `hidden` fields left out (a role
    that may not read them)."""
    shaped = example("account_info", "account_info")
    unknown = set(values) - set(shaped)
    if unknown:
        raise KeyError(f"not in the account_info example: {sorted(unknown)}")
    shaped.update(values)
    return {name: value for name, value in shaped.items() if name not in hidden}


def custom_field(name: str, value: str | None) -> dict[str, Any]:
    """One `custom_fields_values` entry, as the example spells it."""
    shaped: dict[str, Any] = example("custom_fields_values", "custom_fields_values", "0")
    shaped.update(name=name, db_value=value)
    return shaped


def account_list(items: list[dict[str, Any]], total: int, *, with_total: bool) -> dict[str, Any]:
    """`Account/get_account_list`'s answer: `total` only when asked for (`get_total`)."""
    item_shape = example("account_list", "answer", "account_list", "0")
    shaped = []
    for item in items:
        entry = dict(item_shape)
        entry.update(item)
        shaped.append(entry)
    answer: dict[str, Any] = {"account_list": shaped}
    if with_total:
        answer["total"] = total
    return answer
