"""The plan, pure (no Redis): conditions as of a position, delays, send windows in the
user's time zone across both daylight-saving switches, matches and cancels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from herald.consumers.delivery.quiet import quiet_until
from herald.consumers.workflows.plan import Cause, Decide, End, Send, plan
from herald.consumers.workflows.state import Run
from herald.streams import positions

NEW_YORK = ZoneInfo("America/New_York")
QUIET = {"start": "22:00", "end": "08:00", "timezone": "America/New_York"}


def ms(year: int, month: int, day: int, hour: int, minute: int = 0,
       zone: ZoneInfo = NEW_YORK) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=zone).timestamp() * 1000)


def new_run(data: dict[str, Any] | None = None) -> Run:
    return Run("R1", {"k": "wf", "v": "1", "u": "alice", "tp": positions.padded("100-0"),
                      "st": "running", "at": "0", "wt": "", "ck": "order-1"}, data or {})


def outcomes(actions: list[Any]) -> list[str]:
    return [f"send {a.step['id']}" if isinstance(a, Send) else
            f"{a.step['id']} {a.outcome}" if isinstance(a, Decide) else f"end {a.outcome}"
            for a in actions]


@pytest.mark.parametrize(("moment", "expected"), [
    # spring forward (2027-03-14, 02:00 → 03:00): 08:00 EDT is 12:00 UTC
    (ms(2027, 3, 13, 23), ms(2027, 3, 14, 8)),
    (ms(2027, 3, 14, 1, 30), ms(2027, 3, 14, 8)),
    # fall back (2027-11-07, 02:00 → 01:00): 08:00 EST is 13:00 UTC
    (ms(2027, 11, 6, 23), ms(2027, 11, 7, 8)),
    (ms(2027, 11, 7, 1, 30), ms(2027, 11, 7, 8)),
])
def test_quiet_hours_end_at_local_eight_across_both_switches(moment: int,
                                                             expected: int) -> None:
    assert quiet_until(QUIET, moment) == expected
    assert datetime.fromtimestamp(expected / 1000, NEW_YORK).hour == 8


def test_the_switch_nights_have_their_real_length() -> None:
    spring = quiet_until(QUIET, ms(2027, 3, 13, 22)) - ms(2027, 3, 13, 22)  # type: ignore[operator]
    autumn = quiet_until(QUIET, ms(2027, 11, 6, 22)) - ms(2027, 11, 6, 22)  # type: ignore[operator]
    assert spring == 9 * 3600_000 and autumn == 11 * 3600_000  # a 23 h and a 25 h day


@pytest.mark.parametrize("night", [(2027, 3, 13), (2027, 11, 6)])
def test_a_delay_that_ends_in_quiet_hours_waits_for_the_window(night: tuple[int, int, int]
                                                               ) -> None:
    definition = {"steps": [
        {"id": "wait", "type": "delay", "until": "due", "window": True},
        {"id": "sms", "type": "send", "channels": ["sms"], "title": "now"}]}
    due = ms(*night, 23, 30)  # inside 22:00-08:00 in New York
    run = new_run({"due": datetime.fromtimestamp(due / 1000, UTC).isoformat()})
    cause = Cause("trigger", "100-0", due - 3600_000)
    [delayed] = plan(run, definition, cause, {"id": "alice", "quiet_hours": QUIET})
    assert isinstance(delayed, Decide) and delayed.outcome == "delayed"
    opens = datetime.fromtimestamp(delayed.until / 1000, NEW_YORK)  # type: ignore[operator]
    assert (opens.hour, opens.minute) == (8, 0) and opens.date() > \
        datetime.fromtimestamp(due / 1000, NEW_YORK).date()
    assert "next send window" in delayed.detail
    # without a window (or outside quiet hours) the delay ends when asked
    plain = plan(new_run(run.data), {"steps": [{**definition["steps"][0], "window": False},
                                               definition["steps"][1]]},
                 cause, {"id": "alice", "quiet_hours": QUIET})
    assert plain[0].until == due  # type: ignore[union-attr]
    fired = plan(run, definition, Cause("timer", "200-0", delayed.until,  # type: ignore[arg-type]
                                        index=0, until=delayed.until), {"id": "alice"})  # type: ignore[arg-type]
    assert outcomes(fired) == ["wait elapsed", "send sms", "sms sent", "end completed"]


def test_a_condition_counts_only_what_happened_up_to_its_position() -> None:
    definition = {"steps": [
        {"id": "remind", "type": "send", "channels": ["in_app"], "title": "pay"},
        {"id": "pause", "type": "delay", "for": "10m"},
        {"id": "sms", "type": "send", "channels": ["sms"], "title": "now",
         "if": "!steps.remind.read"}]}
    for read_at, sent in (("250-0", False), ("350-0", True)):
        run = new_run()
        assert outcomes(plan(run, definition, Cause("trigger", "100-0", 0), {"id": "a"})) == [
            "send remind", "remind sent", "pause delayed"]
        run.fields["n:remind"] = "N1"
        run.notes["N1"] = {"read": positions.padded(read_at)}  # read after the timer's entry?
        actions = plan(run, definition, Cause("timer", "300-0", 600_000, index=1,
                                              until=600_000), {"id": "a"})
        assert ("send sms" in outcomes(actions)) is sent
        decision = next(a for a in actions if isinstance(a, Decide) and a.step["id"] == "sms")
        assert decision.inputs["steps"]["remind"]["read"] is (not sent)  # type: ignore[index]


def test_a_cancel_and_a_stale_timer_change_nothing_twice() -> None:
    definition = {"steps": [{"id": "w", "type": "wait_for", "event": "paid", "timeout": "1m"}]}
    run = new_run()
    [waiting] = plan(run, definition, Cause("trigger", "100-0", 0), {"id": "a"})
    [ended] = plan(run, definition, Cause("cancel", "200-0", 5, name="order-1"), {"id": "a"})
    assert isinstance(ended, End) and ended.outcome == "cancelled" and ended.timer_index == 0
    assert plan(run, definition, Cause("timer", "300-0", 60_000, index=0, until=60_000),
                {"id": "a"}) == []
    assert isinstance(waiting, Decide) and waiting.until == 60_000
