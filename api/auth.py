"""Bearer API keys with roles, from the `API_KEYS` setting (`[name@]key:role[+role]`, comma-separated;
the form is read by core.api_keys)."""

import hmac
import logging
from dataclasses import dataclass
from enum import StrEnum

from core.api_keys import api_key_entries

log = logging.getLogger(__name__)


class Role(StrEnum):
    website = "website"
    cmms = "cmms"
    admin = "admin"  # may do everything


@dataclass(frozen=True)
class Caller:
    """Who called: a short, non-secret label for logs and rate limits, the roles the key grants, and the
    key's name (`name@key:role`; None for an unnamed key). Keys under one name are one caller: one label,
    one set of orders."""

    label: str
    roles: frozenset[Role]
    name: str | None = None

    def may(self, role: Role) -> bool:
        return Role.admin in self.roles or role in self.roles

    @property
    def order_owner(self) -> str | None:
        """The name whose orders alone this caller reads, lists and repeats: a named key's own (least
        privilege: a shop sees its orders' IMEIs, which the CMMS trades for credentials, and no one
        else's); None for admin and for an unnamed key, which read every order as before names."""
        return None if Role.admin in self.roles else self.name


class ApiKeys:
    """The callers' keys, each granting roles (keys that encrypt are `core.crypto.KeyRing`)."""

    def __init__(self, spec: str) -> None:
        self._keys: list[tuple[bytes, Caller]] = []
        seen: dict[str, int] = {}
        for entry in api_key_entries(spec):
            if entry.key in seen:  # under two names (or roles) a key would be whichever came last
                raise ValueError(f"API_KEYS entry {entry.position} repeats the key of entry {seen[entry.key]}")
            seen[entry.key] = entry.position
            try:
                granted = frozenset(Role(role) for role in entry.roles)
            except ValueError:
                raise ValueError(f"API_KEYS entry {entry.position} names an unknown role") from None
            roles = "+".join(sorted(granted))
            label = f"{entry.name}:{roles}" if entry.name else f"key{entry.position}:{roles}"
            self._keys.append((entry.key.encode(), Caller(label=label, roles=granted, name=entry.name)))

    def identify(self, presented: str) -> Caller | None:
        """The caller holding `presented`, compared in constant time against every key."""
        found: Caller | None = None
        candidate = presented.encode()
        for key, caller in self._keys:
            if hmac.compare_digest(key, candidate):
                found = caller
        return found

    def warn_of_unnamed_website_keys(self) -> None:
        """A warning for each unnamed key that reads every order, with their IMEIs (production logs it at
        start): naming it (`name@key:website`) limits it to its own orders."""
        for position, (_, caller) in enumerate(self._keys, start=1):
            if caller.name is None and Role.website in caller.roles and Role.admin not in caller.roles:
                log.warning(
                    "API_KEYS entry %d is an unnamed website key: it reads every order and its IMEI; "
                    "give it a name (name@key:website) to limit it to its own orders",
                    position,
                )
