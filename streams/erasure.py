"""Erasing a user: their data key goes, then a ``user.erased`` event is appended.

Order matters. Deleting the data key first (streams/keystore.py) makes every sealed
copy of the user's content unreadable at once — in Redis, in snapshots and in
archive segments — so nothing written before the erasure can bring it back, even
if the rest never happens. The event then removes the user's inbox, read state,
preferences, profile, pending schedules and digests from the projection, in log
order, so a replay (from a snapshot or from the start) ends exactly as live did.

Calling it again is safe: a second erasure deletes nothing more. Content appended
for the user afterwards is a new life, sealed with a new key.

Failure modes: ValidationError for a bad user id (nothing done); Redis errors
propagate (run it again).
"""

from __future__ import annotations

from herald.streams.events import Appended, UserErased
from herald.streams.producer import Producer
from herald.streams.validation import check_user


async def erase_user(producer: Producer, user: str) -> tuple[Appended, bool]:
    """Erase ``user``; the appended event and whether a data key was deleted."""
    check_user(user, system=False)
    had_key = await producer.data_keys.erase(user)
    appended = await producer.publish(producer.envelope(user, UserErased()))
    return appended, had_key
