"""The `API_KEYS` setting's form, read in one place (the API's key ring and production's checks).

A comma-separated list of entries `key:role[+role]`, or `name@key:role[+role]`: an entry is named when
the text before its first `@` is a name (letters, digits, `_` and `-`). A name is who holds the key (a
shop, a partner), not the key: it may repeat, so two keys under one name are one caller while the old
key is being retired. The roles stay unchecked here (the API knows them).
"""

import re
from dataclasses import dataclass

# A name is kept on what its key creates (an order's `key_name` column is 64 characters).
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAMED = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class ApiKeyEntry:
    """One entry: its position (1-based, what errors and labels name), its name if it has one, the key,
    and the roles as written."""

    position: int
    name: str | None
    key: str
    roles: tuple[str, ...]


def api_key_entries(spec: str) -> list[ApiKeyEntry]:
    """Every entry of an `API_KEYS` list, trimmed; ValueError naming the entry's position (never its key)
    for one that is not `[name@]key:role[+role]`."""
    entries = []
    for position, entry in enumerate((part.strip() for part in spec.split(",") if part.strip()), start=1):
        text, sep, roles = entry.rpartition(":")
        name, at, key = text.partition("@")
        if not (at and _NAMED.fullmatch(name)):
            name, key = "", text  # not a name before the `@`: the whole text is the key, as before names
        elif not NAME.fullmatch(name):
            raise ValueError(f"API_KEYS entry {position} has a name longer than 64 characters")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"API_KEYS entry {position} is not of the form [name@]key:role[+role]")
        granted = tuple(role.strip() for role in roles.split("+"))
        entries.append(ApiKeyEntry(position=position, name=name or None, key=key, roles=granted))
    return entries
