"""Every Redis key Herald uses, built from one prefix.

Keys that an event of partition ``p`` touches carry the hash tag ``{pNN}``, so each
atomic step (one Lua script or one MULTI) lands in one Redis Cluster slot. The few
global keys (``meta``, ``replay``, ``ratelimit``) are touched outside event steps.

Projection keys take a namespace ``ns``: ``"v"`` is the live view; ``herald replay``
builds another namespace and switches (see consumers/replay/rebuild.py).

No other module builds a key string; tests check every key of a partition lies
in one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE_NS = "v"


def user_part(user: str) -> str:
    """A user id inside a key name where more follows it (``…:<user>:<key>``): the id
    itself when it holds no ``:`` and does not start with ``#`` (every id of the old
    ASCII rule, so those keys keep their names), else ``#`` + its UTF-8 in hex — so two
    (user, key) pairs never name one key, whatever characters a user id has."""
    if ":" not in user and not user.startswith("#"):
        return user
    return "#" + user.encode().hex()


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one prefix (``HERALD_PREFIX``)."""

    prefix: str = "herald"

    # ----------------------------------------------------------------- global
    def tag(self, partition: int) -> str:
        """``herald:{p07}`` — the partition's hash-tagged key root."""
        return f"{self.prefix}:{{p{partition:02d}}}"

    def meta(self) -> str:
        """Hash: ``partitions`` and ``created_at``, written on first start, and
        ``dedupe_window_ms``, the producers' (PROTOCOL.md: what other producers read)."""
        return f"{self.prefix}:meta"

    def view_pointer(self) -> str:
        """String: the namespace the last ``herald replay`` switched every partition to.

        Informational (``herald status``); the authoritative pointer of partition p is
        :meth:`partition_view`, which lives in p's slot so the switch is atomic with
        p's checkpoint.
        """
        return f"{self.prefix}:view"

    def replay_lock(self) -> str:
        """String (PX): held by the one ``herald replay`` running against this prefix."""
        return f"{self.prefix}:replay:lock"

    def members(self, group: str) -> str:
        """Sorted set: live consumers of a group, scored by heartbeat expiry (ms)."""
        return f"{self.prefix}:members:{group}"

    def replay_state(self) -> str:
        """Hash: progress of an interrupted ``herald replay`` (resumable)."""
        return f"{self.prefix}:replay"

    def signal_channel(self, partition: int) -> str:
        """Pub/sub channel: "user u changed at position x" for partition p."""
        return f"{self.tag(partition)}:changed"

    def schedule_signal(self, partition: int) -> str:
        """Pub/sub channel: "something of partition p is due at ms" (the scheduler's
        wake-up; consumers/schedule/scheduler.py)."""
        return f"{self.tag(partition)}:due"

    def rate_bucket(self, scope: str, name: str) -> str:
        """Rate-limit bucket (API keys, users, delivery channels)."""
        return f"{self.prefix}:rl:{{{scope}:{name}}}"

    def channel_rate(self, channel: str) -> str:
        """Sorted set: sends allowed on a delivery channel in the current window."""
        return self.rate_bucket("channel", channel)

    def user_rate(self, channel: str, user: str) -> str:
        """Sorted set: sends allowed to one user on a channel (same slot as the channel's)."""
        return f"{self.channel_rate(channel)}:user:{user}"

    def api_key_rate(self, key_fingerprint: str) -> str:
        """Hash: the request token bucket of one API key (by fingerprint, never the key)."""
        return self.rate_bucket("api_key", key_fingerprint)

    def api_user_rate(self, user: str) -> str:
        """Hash: the request token bucket of one user calling with a user token."""
        return self.rate_bucket("api_user", user)

    def schedule_route(self, cancel_key: str) -> str:
        """Sorted set: users with a schedule under a cancel key, by latest due time (ms).

        Written by the producer before the schedule event is appended (PX past the due
        time), read by ``DELETE /v1/scheduled/{cancel_key}``; a global key.
        """
        return f"{self.prefix}:sched_route:{cancel_key}"

    def wechat_token(self, appid: str) -> str:
        """String: the WeChat access token shared by every worker (PX = its lifetime)."""
        return f"{self.prefix}:wechat:{{{appid}}}:token"

    def wechat_token_lock(self, appid: str) -> str:
        """String: held (PX) by the one worker fetching a new WeChat access token."""
        return f"{self.prefix}:wechat:{{{appid}}}:token_lock"

    def provider_token(self, provider: str, account: str) -> str:
        """String: a provider's access token shared by every worker (WeCom, FCM's OAuth2
        token, APNs' provider JWT), PX = its usable lifetime (consumers/channels/tokens.py).
        ``account`` names the credentials (corp id and agent, project, team and key)."""
        return f"{self.prefix}:token:{{{provider}:{account}}}"

    def provider_token_lock(self, provider: str, account: str) -> str:
        """String: held (PX) by the one worker fetching a new :meth:`provider_token`."""
        return f"{self.provider_token(provider, account)}:lock"

    def provider_breaker(self, channel: str, provider: str) -> str:
        """Hash: a provider's circuit breaker, shared by every worker: ``failures``
        (retryable failures in the current window, which expires) and ``open_until``
        (ms; consumers/channels/fallback.py). One hash: one slot on a Cluster."""
        return f"{self.prefix}:breaker:{{{channel}:{provider}}}"

    def provider_pin(self, channel: str, message_key: str) -> str:
        """String (PX): the provider a message went to when its outcome was unknown (a
        timeout after the request left): every retry goes to that provider, with the
        same idempotency key, never to another one."""
        return f"{self.prefix}:pin:{channel}:{message_key}"

    # -------------------------------------------------------------- the log
    def stream(self, partition: int) -> str:
        """Stream: the partition's log; every event of its users, in order."""
        return f"{self.tag(partition)}:log"

    def idempotency(self, partition: int, span_ms: int, bucket: int) -> str:
        """Hash: idempotency key → ``event_id position`` of its first append, for the
        appends of one time bucket of ``span_ms`` (streams/idempotency.py)."""
        return f"{self.tag(partition)}:idem:{span_ms}:{bucket}"

    def data_keys(self, partition: int) -> str:
        """Hash: user → the user's stored data key (streams/keystore.py). Not derived from
        the log and never snapshotted or archived: deleting a field erases the user."""
        return f"{self.tag(partition)}:dek"

    def archive_state(self, partition: int) -> str:
        """Hash: ``trimmed_to``, the MINID the stream was last trimmed to (every entry
        below it is in an archive segment: streams/archive/); absent = never trimmed."""
        return f"{self.tag(partition)}:archive"

    def dead_letters(self, partition: int) -> str:
        """Stream: entries a consumer group could not process, with the reason."""
        return f"{self.tag(partition)}:dlq"

    def lease(self, group: str, partition: int) -> str:
        """String: the consumer that owns ``partition`` for ``group`` (PX TTL)."""
        return f"{self.tag(partition)}:lease:{group}"

    # ------------------------------------------------------------ projections
    # Functions below that end in a name or an id are "prefix + suffix": called with
    # an empty last argument they give the prefix that Lua scripts append ids to
    # (consumers/projection/applier.py), so the key format stays defined here.
    def partition_view(self, partition: int) -> str:
        """String: the namespace partition p's projection lives in (absent = ``LIVE_NS``)."""
        return f"{self.tag(partition)}:view"

    def ns_root(self, partition: int, ns: str = LIVE_NS) -> str:
        return f"{self.tag(partition)}:{ns}"

    def ns_registry(self, partition: int, ns: str) -> str:
        """Set: every key written in a snapshot's scratch namespace ``ns`` of a partition
        (consumers/retention/), so it is listed and deleted without a SCAN. Outside the
        namespace's root, in the partition's slot."""
        return f"{self.tag(partition)}:registry:{ns}"

    def ns_registry_pattern(self, ns_pattern: str) -> str:
        """SCAN pattern of :meth:`ns_registry` keys of every partition."""
        return f"{self.prefix}:{{p*}}:registry:{ns_pattern}"

    def ns_pattern(self, ns: str, partition: int | None = None) -> str:
        """SCAN pattern of every projection key of ``ns`` (one partition or all)."""
        part = "*" if partition is None else f"{partition:02d}"
        return f"{self.prefix}:{{p{part}}}:{ns}:*"

    def split_ns_key(self, key: str) -> tuple[int, str, str] | None:
        """``(partition, ns, rest)`` of a key under :meth:`ns_root`, else None."""
        head = f"{self.prefix}:{{p"
        if not key.startswith(head):
            return None
        tail = key[len(head):]
        digits, sep, after = tail.partition("}:")
        ns, sep2, rest = after.partition(":")
        if not sep or not sep2 or not digits.isdigit():
            return None
        return int(digits), ns, rest

    def seen(self, partition: int, span_ms: int, bucket: int | str, ns: str = LIVE_NS) -> str:
        """Hash: event id → position of the entry that applied it, for the entries whose
        position's milliseconds fall in one bucket of ``span_ms`` (the dedupe window):
        the projector's record of event ids, so a duplicate is dead-lettered
        (consumers/projection/lua/projector_apply.lua). Buckets are of log time, not
        wall-clock time: replay rebuilds them exactly."""
        return f"{self.ns_root(partition, ns)}:seen:{span_ms}:{bucket}"

    def seen_last(self, partition: int, ns: str = LIVE_NS) -> str:
        """String: the newest bucket of :meth:`seen` written; buckets before the one
        preceding it are deleted, so at most two exist."""
        return f"{self.ns_root(partition, ns)}:seen"

    def checkpoint(self, partition: int, ns: str = LIVE_NS, group: str = "projector") -> str:
        """String: last stream position applied to the namespace by ``group``."""
        return f"{self.ns_root(partition, ns)}:ckpt:{group}"

    def inbox(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's inbox items ordered by log position."""
        return f"{self.ns_root(partition, ns)}:inbox:{user}"

    def item(self, partition: int, notification_id: str, ns: str = LIVE_NS) -> str:
        """Hash: one notification's content and state."""
        return f"{self.ns_root(partition, ns)}:item:{notification_id}"

    # Every inbox item is in ``inbox`` and in exactly one of the four status sets
    # (unread, read, archived, snoozed).
    def inbox_unread(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's unread items that are not archived (same members as inbox)."""
        return f"{self.ns_root(partition, ns)}:unread:{user}"

    def inbox_read(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's read items that are not archived."""
        return f"{self.ns_root(partition, ns)}:read:{user}"

    def inbox_archived(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's archived items (read or not)."""
        return f"{self.ns_root(partition, ns)}:archived:{user}"

    def inbox_snoozed(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's snoozed items (hidden), scored by when they wake (ms)."""
        return f"{self.ns_root(partition, ns)}:snoozed:{user}"

    def inbox_unseen(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's items not seen yet (the badge; any status set)."""
        return f"{self.ns_root(partition, ns)}:unseen:{user}"

    def inbox_expiring(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Sorted set: the user's items that carry ``expires_at``, scored by it (ms)."""
        return f"{self.ns_root(partition, ns)}:expiring:{user}"

    def user_topics(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Set: the topics the user follows."""
        return f"{self.ns_root(partition, ns)}:utopics:{user}"

    def topic_members(self, partition: int, tenant: str, topic: str, ns: str = LIVE_NS) -> str:
        """Set: the users of this partition (and tenant) who follow ``topic``: a topic's
        subscribers are spread over every partition, each share in its own slot."""
        return f"{self.ns_root(partition, ns)}:topic:{user_part(tenant or '-')}:{topic}"

    def tenant_users(self, partition: int, tenant: str, ns: str = LIVE_NS) -> str:
        """Set: the users of this partition (and tenant) Herald knows — who ever had a
        notification or followed a topic: a broadcast's recipients."""
        return f"{self.ns_root(partition, ns)}:users:{user_part(tenant or '-')}"

    def fanout_job(self, job_id: str) -> str:
        """Hash: one topic publish being fanned out (consumers/fanout/jobs.py); not a
        projection (its output, one notification.created per recipient, is the log)."""
        return f"{self.prefix}:{{fanout}}:job:{job_id}"

    def fanout_lease(self, job_id: str) -> str:
        """String (PX): the worker fanning out a job now."""
        return f"{self.prefix}:{{fanout}}:lease:{job_id}"

    def fanout_queue(self) -> str:
        """Sorted set: fan-out jobs not finished, by creation time (ms)."""
        return f"{self.prefix}:{{fanout}}:queue"

    def user_state(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Hash: ``pos``, the highest log position that changed the user's inbox (the
        unread count is not kept here: it is the size of :meth:`inbox_unread`)."""
        return f"{self.ns_root(partition, ns)}:user:{user}"

    def preferences(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Hash: the user's category/channel opt-in and opt-out."""
        return f"{self.ns_root(partition, ns)}:prefs:{user}"

    def profile(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Hash: the user's delivery addresses."""
        return f"{self.ns_root(partition, ns)}:profile:{user}"

    def devices(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Hash: the user's push devices, device id → packed record
        (consumers/delivery/projection.py)."""
        return f"{self.ns_root(partition, ns)}:devices:{user}"

    # Templates are global, yet they are events like everything else: every one is an
    # event of the reserved user ``~templates`` (streams/events.py TEMPLATES_USER), so
    # they all live in that user's partition (one slot on a Cluster), are snapshotted,
    # archived and replayed with it, and readers find them by that partition.
    def template(self, partition: int, template_id: str, ns: str = LIVE_NS) -> str:
        """Hash: one template: ``latest`` (version), ``v<n>`` (packed definition) and
        ``ts<n>`` (registered at, ms) per version."""
        return f"{self.ns_root(partition, ns)}:tpl:{template_id}"

    def template_index(self, partition: int, ns: str = LIVE_NS) -> str:
        """Sorted set: every template id (score 0: lexical order)."""
        return f"{self.ns_root(partition, ns)}:tpls"

    # Workflow definitions are events of the reserved user ``~workflows`` (like templates);
    # a run lives in its recipient's partition (consumers/workflows/projection.py).
    def workflow(self, partition: int, workflow_key: str, ns: str = LIVE_NS) -> str:
        """Hash: one workflow: ``latest``, ``v<n>`` (packed definition), ``ts<n>`` (ms)."""
        return f"{self.ns_root(partition, ns)}:wf:{workflow_key}"

    def workflow_index(self, partition: int, ns: str = LIVE_NS) -> str:
        """Sorted set: every workflow key (score 0: lexical order)."""
        return f"{self.ns_root(partition, ns)}:wfs"

    def workflow_run(self, partition: int, run_id: str, ns: str = LIVE_NS) -> str:
        """Hash: one run's state (consumers/workflows/projection.py)."""
        return f"{self.ns_root(partition, ns)}:wfrun:{run_id}"

    def workflow_run_log(self, partition: int, run_id: str, ns: str = LIVE_NS) -> str:
        """Sorted set: positions of the run's events (its timeline), scored 0."""
        return f"{self.ns_root(partition, ns)}:wfrunlog:{run_id}"

    def workflow_user_runs(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Set: the user's runs not yet ended."""
        return f"{self.ns_root(partition, ns)}:wfuser:{user}"

    def workflow_note(self, partition: int, notification_id: str, ns: str = LIVE_NS) -> str:
        """Hash: a notification a run sent: ``run``, ``step``, and the first positions it
        was ``read``, ``delivered`` and ``failed`` at."""
        return f"{self.ns_root(partition, ns)}:wfnote:{notification_id}"

    def status(self, partition: int, notification_id: str, ns: str = LIVE_NS) -> str:
        """Hash: per-channel delivery status of one notification."""
        return f"{self.ns_root(partition, ns)}:status:{notification_id}"

    def schedule_dropped(self, partition: int, notification_id: str, ns: str = LIVE_NS) -> str:
        """String: ``user`` and time (ms) of a scheduled notification that was cancelled
        and dropped (the status ``cancelled``); expires HERALD_STATUS_TTL after it."""
        return f"{self.ns_root(partition, ns)}:sched_dropped:{notification_id}"

    def schedule(self, partition: int, ns: str = LIVE_NS) -> str:
        """Sorted set: scheduled notification ids by due time (ms)."""
        return f"{self.ns_root(partition, ns)}:sched"

    def scheduled(self, partition: int, notification_id: str, ns: str = LIVE_NS) -> str:
        """String: the encoded event a scheduled notification will become."""
        return f"{self.ns_root(partition, ns)}:sched:{notification_id}"

    def schedule_cancelled(
        self, partition: int, user: str, cancel_key: str, ns: str = LIVE_NS
    ) -> str:
        """String: padded position of the user's last projected cancel under a cancel key."""
        return f"{self.ns_root(partition, ns)}:sched_cancelled:{user_part(user)}:{cancel_key}"

    def cancel_tombstone(self, partition: int, user: str, cancel_key: str) -> str:
        """String (PX): position of the user's last cancel event under a cancel key.

        Written with the cancel event in one script (streams/schedule_cancel.py), read by
        the scheduler's fire script; not a projection. Users never contain ``:``.
        """
        return f"{self.tag(partition)}:tomb:{user_part(user)}:{cancel_key}"

    def digest(self, partition: int, user: str, digest_key: str, ns: str = LIVE_NS) -> str:
        """Hash: the user's collected digest items under a key, not yet summarized.

        Field ``<window end ms, 15 digits>|<padded position>`` (consumers/schedule/).
        """
        return f"{self.ns_root(partition, ns)}:digest:{user_part(user)}:{digest_key}"

    def user_schedules(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Set: the user's scheduled notification ids not yet fired or dropped (what an
        erasure must remove from :meth:`schedule`)."""
        return f"{self.ns_root(partition, ns)}:usched:{user}"

    def user_digests(self, partition: int, user: str, ns: str = LIVE_NS) -> str:
        """Set: the digest keys the user has collected items under (what an erasure must
        remove from :meth:`digests_due`)."""
        return f"{self.ns_root(partition, ns)}:udigests:{user}"

    def digests_due(self, partition: int, ns: str = LIVE_NS) -> str:
        """Sorted set: collected digest items (``user|digest key|field``) by window end (ms)."""
        return f"{self.ns_root(partition, ns)}:digests"

    def retry_queue(self, channel: str, partition: int, critical: bool = False) -> str:
        """Sorted set: deliveries waiting for their next attempt, by due time; critical
        ones wait in their own, taken first (consumers/delivery/retry_queue.py)."""
        return f"{self.tag(partition)}:retry:{channel}" + (":crit" if critical else "")

    def retry_jobs(self, channel: str, partition: int) -> str:
        """Hash: notification id → the packed delivery job waiting in :meth:`retry_queue`."""
        return f"{self.tag(partition)}:retry:{channel}:jobs"
