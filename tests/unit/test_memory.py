"""The long-running processes freeze what they hold at start-up, so full collections skip it."""

import gc

from core.memory import freeze_startup_objects


def test_objects_alive_at_start_up_are_left_out_of_full_collections() -> None:
    held_since_start_up = [object()]  # a tracked container, as the app's routes and schemas are
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > 0
        assert not any(tracked is held_since_start_up for tracked in gc.get_objects())
        made_later = [object()]
        assert any(tracked is made_later for tracked in gc.get_objects())
    finally:
        gc.unfreeze()  # give the test process its objects back
