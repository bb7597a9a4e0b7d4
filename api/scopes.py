"""Which scope a service key needs for each route (streams/service_keys.py).

``publish``: appending notifications (to users, topics, everyone) and cancelling
schedules; ``read``: what an inbox client does for a user (reading inboxes, counts,
statuses, fan-outs, topics, preferences and profiles, live streams, marking seen or
read, snoozing, archiving and unarchiving, deleting, listing devices, reading and
previewing templates); ``manage``: changing a user's profile, contacts, devices,
topics and preferences, registering templates, erasing a user; ``admin``: the
operator's status. Routes that need no credential need no scope; a route not in
the table (an extension module's) needs ``admin``, so a new route is closed until
it is given a scope.
User tokens have no scopes: they act for their own user on ``user`` routes only.
"""

from __future__ import annotations

from herald.api.errors import Forbidden

ROUTE_SCOPES: dict[str, str] = {
    "publish": "publish", "publish_batch": "publish", "events_publish": "publish",
    "cancel_scheduled": "publish", "dev_sample": "publish",
    "notification_by_event": "read", "notification_status": "read",
    "inbox_list": "read", "inbox_unread_count": "read", "inbox_read": "read",
    "inbox_unread": "read", "inbox_archive": "read", "inbox_read_all": "read",
    "inbox_delete": "read", "preferences_get": "read", "profile_get": "read",
    "live_events": "read", "live_ws": "read",
    "preferences_put": "manage", "profile_put": "manage", "user_erase": "manage",
    "user_sign_out": "manage",
    "devices_list": "read", "device_register": "manage", "device_remove": "manage",
    "contact_put": "manage", "contact_delete": "manage",
    "templates_list": "read", "template_get": "read", "template_preview": "read",
    "template_put": "manage",
    "topic_publish": "publish", "broadcast_publish": "publish", "fanout_status": "read",
    "topics_list": "read", "topic_subscribe": "manage", "topic_unsubscribe": "manage",
    "inbox_counts": "read", "inbox_seen": "read", "inbox_bulk": "read",
    "inbox_snooze": "read", "inbox_unarchive": "read",
    "workflows_list": "read", "workflow_get": "read", "workflow_run_get": "read",
    "workflow_put": "manage", "workflow_trigger": "publish", "business_event": "publish",
    "admin_status": "admin",
}
FALLBACK = "admin"


def scope_for(auth: str, operation_id: str) -> str | None:
    """The scope a service key needs for a route of ``auth`` (``none``, ``service``,
    ``user``) and ``operation_id`` (None: the route needs no credential)."""
    if auth == "none":
        return None
    return ROUTE_SCOPES.get(operation_id, FALLBACK)


def require_scope(scopes: frozenset[str], needed: str, key: str) -> None:
    """Raise Forbidden naming the scope a service key lacks."""
    if needed not in scopes:
        raise Forbidden(f"the service key {key!r} lacks the {needed!r} scope this route needs "
                        f"(it has {', '.join(sorted(scopes)) or 'none'})")
