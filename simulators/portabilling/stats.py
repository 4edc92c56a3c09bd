"""Counts a test reads at `GET /_sim/stats`: how often the service logged in, and what it called."""

from collections import Counter

from pydantic import BaseModel


class StatsView(BaseModel):
    logins: int
    refused_logins: int
    refused_tokens: int
    calls: dict[str, int]  # by JSON API method (`Account/get_account_info`) or `status`


class Stats:
    def __init__(self) -> None:
        self.logins = 0
        self.refused_logins = 0
        self.refused_tokens = 0
        self.calls: Counter[str] = Counter()

    def view(self) -> StatsView:
        return StatsView(
            logins=self.logins,
            refused_logins=self.refused_logins,
            refused_tokens=self.refused_tokens,
            calls=dict(self.calls),
        )
