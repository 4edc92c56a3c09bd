"""Counts a test reads at `GET /_sim/stats`: how often the service logged in, and what it called."""

from enum import StrEnum

from pydantic import BaseModel

from simulators.common import Counts


class StatsView(BaseModel):
    logins: int
    refused_logins: int
    refused_tokens: int
    calls: dict[str, int]  # by JSON API method (`Account/get_account_info`) or `status`


class Count(StrEnum):
    login = "logins"
    refused_login = "refused_logins"
    refused_token = "refused_tokens"


class Stats(Counts):
    """Runtime counters (a restart or `DELETE /_sim/stats` resets them)."""

    def call(self, name: str) -> None:
        """One call served: a JSON API method, or `status`."""
        self.add(("call", name))

    def view(self) -> StatsView:
        with self._lock:
            counts = dict(self._counts)
        calls = {key[1]: n for key, n in counts.items() if isinstance(key, tuple)}
        return StatsView(
            logins=counts.get(Count.login, 0),
            refused_logins=counts.get(Count.refused_login, 0),
            refused_tokens=counts.get(Count.refused_token, 0),
            calls=calls,
        )
