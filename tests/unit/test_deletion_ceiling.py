"""The deletion ceiling a reconciliation weighs its orphans against, and its settings."""

import pytest
from pydantic import ValidationError

from contracts.reconciliation import DeletionCeiling
from core.settings import Settings
from services.reconciliation import deletion_ceiling


def test_orphans_are_held_only_past_both_the_count_and_the_share() -> None:
    ceiling = DeletionCeiling(count=25, share=0.05)
    assert ceiling.reason(0, 100, 0) is None  # nothing to delete: nothing to hold
    assert ceiling.reason(25, 26, 1) is None  # at the count, whatever the share
    assert ceiling.reason(26, 1000, 974) is None  # past the count, within the share (5 % of 1,000 is 50)
    assert ceiling.reason(50, 1000, 950) is None  # at the share
    reason = ceiling.reason(51, 1000, 949)
    assert reason is not None and "51 of the CMMS's 1000 records" in reason


def test_an_empty_billing_holds_any_orphan() -> None:
    reason = DeletionCeiling().reason(1, 1000, 0)
    assert reason is not None and "billing has no accounts" in reason


def test_the_settings_make_the_ceiling() -> None:
    settings = Settings(
        _env_file=None, RECONCILE_MAX_DELETIONS="10", RECONCILE_MAX_DELETION_SHARE="0.2", RECONCILE_HOLD_FOR="2d"
    )
    assert deletion_ceiling(settings.reconciliation) == DeletionCeiling(count=10, share=0.2, hold_for=2 * 86400)
    assert deletion_ceiling(Settings(_env_file=None).reconciliation) == DeletionCeiling()  # the same defaults


@pytest.mark.parametrize("hold_for", ["0", "off", ""])
def test_a_held_run_always_has_some_time_to_be_confirmed(hold_for: str) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, RECONCILE_HOLD_FOR=hold_for)
