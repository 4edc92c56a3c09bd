"""Bearer API keys with roles, from the `API_KEYS` setting (`key:role` or `key:role+role`, comma-separated)."""

import hmac
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    website = "website"
    cmms = "cmms"
    admin = "admin"  # may do everything


@dataclass(frozen=True)
class Caller:
    """Who called: a short, non-secret label for logs and rate limits, and the roles the key grants."""

    label: str
    roles: frozenset[Role]

    def may(self, role: Role) -> bool:
        return Role.admin in self.roles or role in self.roles


class ApiKeys:
    """The callers' keys, each granting roles (keys that encrypt are `core.crypto.KeyRing`)."""

    def __init__(self, spec: str) -> None:
        self._keys: list[tuple[bytes, Caller]] = []
        for index, entry in enumerate(part.strip() for part in spec.split(",") if part.strip()):
            key, sep, roles = entry.rpartition(":")
            if not sep or not key:
                raise ValueError(f"API_KEYS entry {index + 1} is not of the form key:role[+role]")
            try:
                granted = frozenset(Role(r.strip()) for r in roles.split("+"))
            except ValueError:
                raise ValueError(f"API_KEYS entry {index + 1} names an unknown role") from None
            label = f"key{index + 1}:{'+'.join(sorted(granted))}"
            self._keys.append((key.encode(), Caller(label=label, roles=granted)))

    def identify(self, presented: str) -> Caller | None:
        """The caller holding `presented`, compared in constant time against every key."""
        found: Caller | None = None
        candidate = presented.encode()
        for key, caller in self._keys:
            if hmac.compare_digest(key, candidate):
                found = caller
        return found
