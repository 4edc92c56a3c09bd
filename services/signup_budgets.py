"""What a signup may cost before its code is sent: the SMS budgets per prefix, per country and per day,
the automatic pause of a range whose signups are not verified, and the global wrong-code budget.

SMS pumping (toll fraud) sends codes to numbers whose operator shares the fee with the fraudster; the
numbers are many, fresh, from a few costly ranges, and never enter their codes. Verification services
stop it where the SMS would go out: Twilio Verify's geo permissions allow only the countries served
(https://www.twilio.com/docs/verify/preventing-toll-fraud/verify-geo-permissions) and its Fraud Guard
blocks a prefix where it sees fraud, for 12 hours at a time
(https://www.twilio.com/docs/verify/preventing-toll-fraud/sms-fraud-guard,
https://www.twilio.com/docs/api/errors/60410). Here the allow list is
SIGNUP_ALLOWED_COUNTRIES, the ranges are the prefix (the E.164 number without its last four digits) and
the country, and a range whose last hour's SMS were verified too rarely is paused for a while.

Every count is a hit of the shared limiter (services.rate_limit: the billing database, or Redis), so
each API process sees the same figures. A send holds its places in the budgets before the code goes
out, the three checked and counted in one step (each or none), and gives them back when no code went
out, so a budget counts the SMS actually sent and concurrent requests never pass it.
"""

import logging
import math
import time
from dataclasses import dataclass, field

from prometheus_client import Counter

from contracts.phone import country_of
from core.settings import SignupSettings
from services.errors import TooMany
from services.rate_limit import Limit, RateLimiter, Verdict

log = logging.getLogger(__name__)

HOUR = 3600
DAY = 86400
# A count with no limit of its own (verified signups, wrong codes over all numbers): only read.
_UNLIMITED = 2**31 - 1
# While an attack goes on, its warning is logged once a minute per API process, not once a request.
_WARN_EVERY = 60.0
# The digits a prefix leaves out: a range of ten thousand numbers, as a mobile operator hands them out.
PREFIX_HIDES = 4

# Label values are fixed: `reason` one of REASONS, `scope` prefix or country.
REASONS = (
    "number",
    "client",
    "prefix_paused",
    "country_paused",
    "prefix_budget",
    "country_budget",
    "daily_budget",
    "verify_number",
    "verify_client",
    "wrong_codes",
)
REFUSED = Counter(
    "signup_refused_total", "Signup requests and verifies refused by a limit or budget, by reason", ["reason"]
)
PAUSED = Counter("signup_paused_total", "Prefixes and countries paused for their unverified signups", ["scope"])
WRONG_CODE_BUDGET_SPENT = Counter(
    "signup_wrong_code_budget_spent_total",
    "Verifies held to the reduced wrong-code allowance: the hour's wrong codes over all numbers passed their budget",
)


def prefix_of(e164: str) -> str:
    """The number's range: its E.164 form without the last four digits."""
    return e164[:-PREFIX_HIDES]


def refusal(reason: str, detail: str, retry_after: int | None) -> TooMany:
    """A 429 naming its reason (one of REASONS), counted on the API's /metrics."""
    REFUSED.labels(reason).inc()
    return TooMany(detail, retry_after=retry_after if retry_after is not None else 60, reason=reason)


def _paused(scope: str, retry_after: int | None) -> TooMany:
    return refusal(
        f"{scope}_paused",
        f"signups from this {scope} are paused: too few of its recent codes were verified",
        retry_after,
    )


@dataclass
class Held:
    """Places held in the limiter's counts by one request, to be given back if it turns out not to count."""

    places: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, verdict: Verdict) -> None:
        if verdict.token is not None:
            self.places.append((key, verdict.token))


class SignupBudgets:
    """The budgets a code SMS spends, and the counts of verifications and wrong codes they are judged by."""

    def __init__(self, limiter: RateLimiter, settings: SignupSettings) -> None:
        self._limiter = limiter
        self._settings = settings
        self._warned_at: dict[str, float] = {}  # by warning: when this process last logged it

    async def hold_send(self, e164: str, held: Held) -> None:
        """Hold the SMS's places in the prefix's, the country's and the day's budgets, or refuse (429, and
        everything `held` is given back). Paused ranges are refused first; a range whose last hour's SMS
        were verified too rarely is paused now. Two steps: the pauses and conversions read together, then
        the three budgets counted together (each or none)."""
        settings = self._settings
        ranges = (("prefix", prefix_of(e164)), ("country", country_of(e164)))
        tallies = await self._limiter.count_all(
            [(f"signup:paused:{scope}:{name}", settings.pause_seconds) for scope, name in ranges]
            + [(f"signup:verified:{scope}:{name}", HOUR) for scope, name in ranges]
        )
        for (scope, _), paused in zip(ranges, tallies[:2], strict=True):
            if paused.hits:
                await self.give_back(held)
                raise _paused(scope, paused.retry_after)
        conversion_limits = [
            self._conversion_limit(verified.hits, min_sends)
            for verified, min_sends in zip(
                tallies[2:], (settings.prefix_pause_min_sends, settings.country_pause_min_sends), strict=True
            )
        ]
        budgets = (settings.prefix_hourly_budget, settings.country_hourly_budget)
        limits = [
            Limit(f"signup:sms:{scope}:{name}", min(budget, conversion), HOUR)
            for (scope, name), budget, conversion in zip(ranges, budgets, conversion_limits, strict=True)
        ] + [Limit("signup:sms:all", settings.daily_budget, DAY)]
        verdicts = await self._limiter.hit_all(limits)
        refused = next((i for i, verdict in enumerate(verdicts) if not verdict.allowed), None)
        if refused is None:
            for limit, verdict in zip(limits, verdicts, strict=True):
                held.add(limit.key, verdict)
            return
        await self.give_back(held)
        retry_after = verdicts[refused].retry_after
        if refused == len(ranges):
            self._warn("daily", "signups refused: the day's SMS budget (SIGNUP_DAILY_BUDGET) is spent")
            raise refusal("daily_budget", "the day's SMS budget is spent; try again later", retry_after)
        scope, name = ranges[refused]
        if conversion_limits[refused] < budgets[refused]:
            await self._pause(scope, name)
            raise _paused(scope, settings.pause_seconds)
        detail = f"this {scope}'s SMS budget for the hour is spent; try again later"
        raise refusal(f"{scope}_budget", detail, retry_after)

    async def verified(self, e164: str) -> None:
        """A signup of the number was verified: its prefix and country converted once more."""
        for scope, name in (("prefix", prefix_of(e164)), ("country", country_of(e164))):
            await self._limiter.hit(f"signup:verified:{scope}:{name}", _UNLIMITED, HOUR)

    async def wrong_code_allowance(self) -> int:
        """Each number's wrong codes allowed in SIGNUP_WRONG_CODE_WINDOW_SECONDS: the reduced allowance
        while the hour's wrong codes over all numbers are past their budget (guessing across numbers)."""
        settings = self._settings
        spent = (await self._limiter.count("wrong-code:all", HOUR)).hits
        if spent < settings.wrong_code_hourly_budget:
            return settings.wrong_code_limit
        WRONG_CODE_BUDGET_SPENT.inc()
        self._warn(
            "wrong-codes",
            "signup wrong codes over all numbers past SIGNUP_WRONG_CODE_HOURLY_BUDGET (%d this hour): "
            "each number now gets %d (guessing across numbers?)",
            spent,
            settings.wrong_code_reduced_limit,
        )
        return min(settings.wrong_code_limit, settings.wrong_code_reduced_limit)

    async def hold_wrong_code(self, held: Held) -> None:
        """A place in the hour's count of wrong codes over all numbers, while the workflow judges a code."""
        held.add("wrong-code:all", await self._limiter.hit("wrong-code:all", _UNLIMITED, HOUR))

    async def give_back(self, held: Held) -> None:
        for key, token in held.places:
            await self._limiter.take_back(key, token)
        held.places.clear()

    def _conversion_limit(self, verified: int, min_sends: int) -> int:
        """The most SMS a range may have had in the hour before it is paused, given its verified signups:
        min_sends, or more while at least SIGNUP_PAUSE_MIN_VERIFIED_SHARE of them were verified."""
        share = self._settings.pause_min_verified_share
        if share <= 0:
            return _UNLIMITED
        return max(min_sends, math.floor(verified / share + 1e-9) + 1)

    def _warn(self, what: str, message: str, *args: object) -> None:
        """Log a warning that holds while an attack goes on once a minute, not once a request."""
        now = time.monotonic()
        if now - self._warned_at.get(what, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned_at[what] = now
            log.warning(message, *args)

    async def _pause(self, scope: str, name: str) -> None:
        key = f"signup:paused:{scope}:{name}"
        if (await self._limiter.hit(key, 1, self._settings.pause_seconds)).allowed:
            PAUSED.labels(scope).inc()
            log.warning(
                "signups from %s %s paused for %d s: too few of this hour's codes were verified (SMS pumping?)",
                scope,
                name,
                self._settings.pause_seconds,
            )
