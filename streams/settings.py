"""Settings: one frozen object built once per process from the environment.

Every variable is named ``HERALD_*`` except ``REDIS_URL``. An invalid value fails at
start with a :class:`SettingsError` that names the variable. Names Herald does not read
(a typo, a Kubernetes service link such as ``HERALD_PORT=tcp://10.0.0.7:8080``) are
skipped here and reported by streams/environment.py (the CLI logs a warning with a
did-you-mean), so a platform's injected variables never stop a process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herald.streams.allocator import ALLOCATORS
from herald.streams.crypto import MasterKeys
from herald.streams.egress import IPNetwork, parse_cidrs
from herald.streams.environment import skipped
from herald.streams.errors import SettingsError
from herald.streams.service_keys import parse_service_keys

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Parse ``250ms``, ``30s``, ``5m``, ``1h``, ``7d`` or a bare number of seconds.

    Raises ValueError on anything else, including negative values.
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 5m, 1h, 7d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {text!r} (use true/false)")


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(ms|s|m|h|d))?\s*$")


def parse_rate(text: str) -> tuple[float, float] | None:
    """Parse a Celery-style rate ``100/s``, ``10/m``, ``5000/h``, ``3/d``, or a bare
    number meaning per second → (count, period seconds).

    ``off`` (or ``0``) means no limit and gives None. Raises ValueError otherwise.
    The one parser of rates: request limits (api/request_limit.py) and delivery
    limits (consumers/delivery/ratelimit.py) both read theirs with it.
    """
    if text.strip().lower() in {"off", "0", "none"}:
        return None
    match = _RATE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a rate: {text!r} (use e.g. 100/s, 10/m, 5/d, or off)")
    return float(match.group(1)), _DURATION_UNITS[match.group(2) or "s"]


@dataclass(frozen=True, slots=True)
class SnapshotEvery:
    """When a partition is snapshotted: after ``events`` new entries, or ``seconds``
    after the last snapshot when anything new arrived (None: that bound is off)."""

    events: int | None
    seconds: float | None


def parse_snapshot_every(text: str) -> SnapshotEvery:
    """``"10000"`` (entries), ``"1h"`` (a duration), or both: ``"10000,1h"``."""
    events: int | None = None
    seconds: float | None = None
    for part in (p.strip() for p in text.split(",")):
        if part.isdigit():
            if events is not None or int(part) < 1:
                raise ValueError(f"give one positive number of entries, got {text!r}")
            events = int(part)
        else:
            if seconds is not None:
                raise ValueError(f"give at most one duration, got {text!r}")
            seconds = parse_duration(part)
            if seconds < 1:
                raise ValueError("the duration must be at least 1s")
    if events is None and seconds is None:
        raise ValueError("give a number of entries, a duration, or both (e.g. 10000,1h)")
    return SnapshotEvery(events, seconds)


def _rate(text: str) -> str:
    parse_rate(text)
    return text.strip()


def _tenant_rates(text: str) -> tuple[tuple[str, str], ...]:
    """``tenant=rate,…`` (``*`` = every other tenant, the default one included)."""
    out = []
    for part in _csv(text):
        tenant, sep, rate = part.partition("=")
        tenant = tenant.strip()
        if not sep or not (tenant == "*" or tenant == "-" or re.fullmatch(
                r"[a-z0-9][a-z0-9_-]{0,63}", tenant)):
            raise ValueError(f"not tenant=rate: {part!r} (e.g. acme=100/s,*=20/s)")
        out.append((tenant, _rate(rate)))
    return tuple(out)


def tenant_preferences(text: str) -> dict[str, Any]:
    """HERALD_TENANT_PREFERENCES read: JSON ``{"tenant": {category: {channel: bool}}}``
    (``"-"`` = the default tenant); ValueError when it is not that shape."""
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ValueError(f"is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not all(
            isinstance(v, dict) and all(isinstance(c, dict) and all(
                isinstance(b, bool) for b in c.values()) for c in v.values())
            for v in doc.values()):
        raise ValueError('must be JSON {"tenant": {"category": {"channel": true|false}}}')
    return doc


def _json_preferences(text: str) -> str:
    tenant_preferences(text)
    return text.strip()


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {text!r}")
        return text

    return parse


def _subset(*options: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = _csv(text)
        unknown = [name for name in chosen if name not in options]
        if unknown or len(set(chosen)) != len(chosen):
            raise ValueError(f"must list some of {', '.join(options)} once each, got {text!r}")
        return chosen

    return parse


def _share(text: str) -> float:
    """``10%`` or ``0.1`` → 0.1 (from 0 to 0.9: bulk sends keep some room)."""
    raw = text.strip()
    value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    if not 0 <= value <= 0.9:
        raise ValueError(f"must be between 0% and 90%, got {text!r}")
    return value


def _env(name: str, parser: Callable[[str], Any], default: Any) -> Any:
    return field(default=default, metadata={"env": name, "parse": parser})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Process-wide configuration; see the README's configuration table."""

    # --- the log and its server
    redis_url: str | None = _env("REDIS_URL", str, None)
    redis_cluster: bool = _env("HERALD_REDIS_CLUSTER", _bool, False)
    # Connections one process may open to Redis; more requests at once wait for one.
    redis_max_connections: int = _env("HERALD_REDIS_MAX_CONNECTIONS", _positive_int, 256)
    # Longest wait for one reply (or a connection) before the command fails as a
    # timeout: a stalled network fails loudly instead of hanging (blocking reads wait
    # their BLOCK time plus a margin on top of it).
    redis_timeout_s: float = _env("HERALD_REDIS_TIMEOUT", parse_duration, 10.0)
    # TLS to Redis (rediss://): refuse a plaintext URL; the CA that signs the server's
    # certificate, and a client certificate and key (PEM files) for mutual TLS.
    redis_require_tls: bool = _env("HERALD_REDIS_REQUIRE_TLS", _bool, False)
    redis_ca: str = _env("HERALD_REDIS_CA", str, "")
    redis_cert: str = _env("HERALD_REDIS_CERT", str, "")
    redis_key: str = _env("HERALD_REDIS_KEY", str, "")
    data_dir: Path = _env("HERALD_DATA_DIR", Path, Path(".herald"))
    appendfsync: str = _env("HERALD_APPENDFSYNC", _choice("everysec", "always"), "everysec")
    # When a publish is acknowledged (streams/durability.py): the primary applied it
    # (leader), HERALD_PUBLISH_REPLICAS replicas have it too (replica: WAIT), or it is
    # in the append-only file of the primary and of that many replicas (fsync: WAITAOF).
    publish_durability: str = _env("HERALD_PUBLISH_DURABILITY",
                                   _choice("leader", "replica", "fsync"), "leader")
    publish_replicas: int = _env("HERALD_PUBLISH_REPLICAS", int, 1)
    publish_wait_s: float = _env("HERALD_PUBLISH_WAIT", parse_duration, 1.0)
    # The private server's malloc (jemalloc preloaded into a libc build): streams/allocator.py
    server_allocator: str = _env("HERALD_SERVER_ALLOCATOR", _choice(*ALLOCATORS), "auto")
    prefix: str = _env("HERALD_PREFIX", str, "herald")
    partitions: int = _env("HERALD_PARTITIONS", _positive_int, 64)
    dedupe_window_s: float = _env("HERALD_DEDUPE_WINDOW", parse_duration, 86400.0)
    max_event_bytes: int = _env("HERALD_MAX_EVENT_BYTES", _positive_int, 64 * 1024)
    max_batch: int = _env("HERALD_MAX_BATCH", _positive_int, 1000)
    # Personal fields (title, body, data, addresses) are sealed with a per-user data key
    # before they enter the log, so `herald erase` can make every copy unreadable.
    seal: bool = _env("HERALD_SEAL", _bool, True)
    # Master keys that wrap the data keys at rest: "id:base64(32 bytes),..." (first current).
    secret_keys: str = _env("HERALD_SECRET_KEYS", str, "")
    # --- logging
    log_format: str = _env("HERALD_LOG_FORMAT", _choice("auto", "json", "console"), "auto")
    log_level: str = _env(
        "HERALD_LOG_LEVEL", _choice("debug", "info", "warning", "error"), "info"
    )
    # --- consumers
    inbox_max: int = _env("HERALD_INBOX_MAX", _positive_int, 1000)
    # --- retention (consumers/retention/): snapshots, archive segments, trimming
    retention: bool = _env("HERALD_RETENTION", _bool, True)
    snapshot_every: SnapshotEvery = _env("HERALD_SNAPSHOT_EVERY", parse_snapshot_every,
                                         SnapshotEvery(10_000, 3600.0))
    snapshot_keep: int = _env("HERALD_SNAPSHOT_KEEP", _positive_int, 3)
    # Where segments and snapshots live: file:///abs/path or s3://bucket/prefix (empty:
    # <HERALD_DATA_DIR>/archive). S3 credentials and endpoint: the AWS_* variables.
    archive_url: str = _env("HERALD_ARCHIVE_URL", str, "")
    max_deliveries: int = _env("HERALD_MAX_DELIVERIES", _positive_int, 5)
    lease_ttl_s: float = _env("HERALD_LEASE_TTL", parse_duration, 10.0)
    read_batch: int = _env("HERALD_READ_BATCH", _positive_int, 500)
    claim_idle_s: float = _env("HERALD_CLAIM_IDLE", parse_duration, 30.0)
    delivery_concurrency: int = _env("HERALD_DELIVERY_CONCURRENCY", _positive_int, 100)
    rate_limits: str = _env("HERALD_RATE_LIMITS", str, "")
    status_ttl_s: float = _env("HERALD_STATUS_TTL", parse_duration, 7 * 86400.0)
    retry_schedule: str = _env("HERALD_RETRY_SCHEDULE", str, "1s,5s,30s,2m,10m")
    # Categories delivered on every channel a notification names, whatever the
    # user's preferences say (e.g. "security,billing"). Empty = none.
    critical_categories: tuple[str, ...] = _env("HERALD_CRITICAL_CATEGORIES", _csv, ())
    # Per (user, channel) throttle, same syntax as HERALD_RATE_LIMITS; "*" is the
    # default for channels not listed, e.g. "sms=5/h,*=30/m". Empty = no throttle.
    user_rate_limits: str = _env("HERALD_USER_RATE_LIMITS", str, "")
    # --- delivery channels (consumers/channels/); secrets are never logged
    # webhook: total time per POST (Standard Webhooks recommends 15-30 s).
    webhook_timeout_s: float = _env("HERALD_WEBHOOK_TIMEOUT", parse_duration, 15.0)
    # SSRF guard (streams/egress.py): ranges a webhook may reach although they are
    # loopback/private/... ("10.1.0.0/16,fd00::/8"), and an egress proxy for every POST.
    webhook_allow_cidrs: str = _env("HERALD_WEBHOOK_ALLOW_CIDRS", str, "")
    webhook_proxy: str = _env("HERALD_WEBHOOK_PROXY", str, "")
    # SMS through a Twilio-shaped Messages API: base URL (no trailing path),
    # account SID and auth token (HTTP basic auth), sender number or a
    # messaging-service SID ("MG..."), total time per request, and the header that
    # carries the per-(notification, channel, recipient) idempotency key.
    sms_base_url: str = _env("HERALD_SMS_BASE_URL", str, "https://api.twilio.com")
    sms_account_sid: str = _env("HERALD_SMS_ACCOUNT_SID", str, "")
    sms_auth_token: str = _env("HERALD_SMS_AUTH_TOKEN", str, "")
    sms_from: str = _env("HERALD_SMS_FROM", str, "")
    sms_timeout_s: float = _env("HERALD_SMS_TIMEOUT", parse_duration, 10.0)
    sms_idempotency_header: str = _env(
        "HERALD_SMS_IDEMPOTENCY_HEADER", str, "I-Twilio-Idempotency-Token"
    )
    # WeChat subscribe messages: API base URL, app id and secret (for the access
    # token), default template id, the template fields that receive the title and
    # the body, the page opened on tap (empty = none), total time per request.
    wechat_base_url: str = _env("HERALD_WECHAT_BASE_URL", str, "https://api.weixin.qq.com")
    wechat_appid: str = _env("HERALD_WECHAT_APPID", str, "")
    wechat_secret: str = _env("HERALD_WECHAT_SECRET", str, "")
    wechat_template_id: str = _env("HERALD_WECHAT_TEMPLATE_ID", str, "")
    wechat_title_field: str = _env("HERALD_WECHAT_TITLE_FIELD", str, "thing1")
    wechat_body_field: str = _env("HERALD_WECHAT_BODY_FIELD", str, "thing2")
    wechat_page: str = _env("HERALD_WECHAT_PAGE", str, "")
    wechat_timeout_s: float = _env("HERALD_WECHAT_TIMEOUT", parse_duration, 10.0)
    # email over SMTP: server, port, TLS mode (auto = STARTTLS when offered, tls =
    # implicit TLS, starttls = required, none = plain), optional login, the From
    # header (its domain also names Message-IDs), total time per send.
    smtp_host: str = _env("HERALD_SMTP_HOST", str, "localhost")
    smtp_port: int = _env("HERALD_SMTP_PORT", _positive_int, 25)
    smtp_tls: str = _env("HERALD_SMTP_TLS", _choice("auto", "tls", "starttls", "none"), "auto")
    smtp_username: str = _env("HERALD_SMTP_USERNAME", str, "")
    smtp_password: str = _env("HERALD_SMTP_PASSWORD", str, "")
    smtp_from: str = _env("HERALD_SMTP_FROM", str, "Herald <herald@localhost>")
    smtp_timeout_s: float = _env("HERALD_SMTP_TIMEOUT", parse_duration, 30.0)
    # --- providers behind the channels (consumers/channels/registry.py): which one a
    # channel uses, validated at worker start (consumers/channels/registry.py check)
    sms_provider: str = _env("HERALD_SMS_PROVIDER", _choice("twilio", "aliyun", "tencent"),
                             "twilio")
    # An ordered fallback list (consumers/channels/fallback.py): when set (two or more),
    # SMS moves to the next provider while one's circuit is open; empty: the one above.
    sms_providers: tuple[str, ...] = _env("HERALD_SMS_PROVIDERS",
                                          _subset("twilio", "aliyun", "tencent"), ())
    breaker_failures: int = _env("HERALD_BREAKER_FAILURES", _positive_int, 5)
    breaker_window_s: float = _env("HERALD_BREAKER_WINDOW", parse_duration, 30.0)
    breaker_open_s: float = _env("HERALD_BREAKER_OPEN", parse_duration, 60.0)
    wechat_provider: str = _env("HERALD_WECHAT_PROVIDER",
                                _choice("miniprogram", "official", "wecom"), "miniprogram")
    push_providers: tuple[str, ...] = _env("HERALD_PUSH_PROVIDERS", _subset("fcm", "apns"),
                                           ("fcm", "apns"))
    # Alibaba Cloud SMS (SendSms, ACS3-HMAC-SHA256): endpoint, AccessKey, sign name, and
    # the template code used when a notification brings none (its param: ${content}).
    aliyun_sms_base_url: str = _env("HERALD_ALIYUN_SMS_BASE_URL", str,
                                    "https://dysmsapi.aliyuncs.com")
    aliyun_access_key_id: str = _env("HERALD_ALIYUN_ACCESS_KEY_ID", str, "")
    aliyun_access_key_secret: str = _env("HERALD_ALIYUN_ACCESS_KEY_SECRET", str, "")
    aliyun_sms_sign_name: str = _env("HERALD_ALIYUN_SMS_SIGN_NAME", str, "")
    aliyun_sms_template_code: str = _env("HERALD_ALIYUN_SMS_TEMPLATE_CODE", str, "")
    # Tencent Cloud SMS (SendSms 2021-01-11, TC3-HMAC-SHA256): endpoint, SecretId/Key,
    # SmsSdkAppId, sign name, default template id (one parameter: the text), region.
    tencent_sms_base_url: str = _env("HERALD_TENCENT_SMS_BASE_URL", str,
                                     "https://sms.tencentcloudapi.com")
    tencent_secret_id: str = _env("HERALD_TENCENT_SECRET_ID", str, "")
    tencent_secret_key: str = _env("HERALD_TENCENT_SECRET_KEY", str, "")
    tencent_sms_app_id: str = _env("HERALD_TENCENT_SMS_APP_ID", str, "")
    tencent_sms_sign_name: str = _env("HERALD_TENCENT_SMS_SIGN_NAME", str, "")
    tencent_sms_template_id: str = _env("HERALD_TENCENT_SMS_TEMPLATE_ID", str, "")
    tencent_sms_region: str = _env("HERALD_TENCENT_SMS_REGION", str, "ap-guangzhou")
    # WeCom (企业微信) application messages: API base, corp id, the app's secret and
    # agent id (the access token is shared by every worker through Redis).
    wecom_base_url: str = _env("HERALD_WECOM_BASE_URL", str, "https://qyapi.weixin.qq.com")
    wecom_corp_id: str = _env("HERALD_WECOM_CORP_ID", str, "")
    wecom_secret: str = _env("HERALD_WECOM_SECRET", str, "")
    wecom_agent_id: str = _env("HERALD_WECOM_AGENT_ID", str, "")
    # Push: total time per provider request, and devices kept per user.
    push_timeout_s: float = _env("HERALD_PUSH_TIMEOUT", parse_duration, 10.0)
    max_devices: int = _env("HERALD_MAX_DEVICES", _positive_int, 10)
    # Firebase Cloud Messaging HTTP v1: API base, and the service account (a JSON file's
    # path, or the JSON itself) whose key signs the OAuth2 assertion; the project id
    # defaults to the service account's.
    fcm_base_url: str = _env("HERALD_FCM_BASE_URL", str, "https://fcm.googleapis.com")
    fcm_credentials: str = _env("HERALD_FCM_CREDENTIALS", str, "")
    fcm_project_id: str = _env("HERALD_FCM_PROJECT_ID", str, "")
    # APNs, token-based (a .p8 signing key) over HTTP/2: API base (sandbox:
    # https://api.sandbox.push.apple.com), team id, key id, the key (PEM text or a file
    # path), and the app's bundle id (apns-topic).
    apns_base_url: str = _env("HERALD_APNS_BASE_URL", str, "https://api.push.apple.com")
    apns_team_id: str = _env("HERALD_APNS_TEAM_ID", str, "")
    apns_key_id: str = _env("HERALD_APNS_KEY_ID", str, "")
    apns_private_key: str = _env("HERALD_APNS_PRIVATE_KEY", str, "")
    apns_topic: str = _env("HERALD_APNS_TOPIC", str, "")
    # --- priority routing: the share of each channel's HERALD_RATE_LIMITS kept free for
    # critical sends (bulk sends use the rest; consumers/delivery/ratelimit.py)
    critical_reserve: float = _env("HERALD_CRITICAL_RESERVE", _share, 0.1)
    # --- API
    host: str = _env("HERALD_HOST", str, "127.0.0.1")
    port: int = _env("HERALD_PORT", int, 8080)
    api_keys: tuple[str, ...] = _env("HERALD_API_KEYS", _csv, ())
    # Scoped, optionally hashed keys: "id[@tenant]:scope+scope:key|sha256:<hex>,..."
    # (streams/service_keys.py); every key here and in HERALD_API_KEYS is valid at once.
    service_keys: str = _env("HERALD_SERVICE_KEYS", str, "")
    token_secret: str = _env("HERALD_TOKEN_SECRET", str, "")
    # User tokens: the iss/aud they must carry (empty: not checked), and the clock skew
    # accepted on exp/nbf/iat.
    token_issuer: str = _env("HERALD_TOKEN_ISSUER", str, "")
    token_audience: str = _env("HERALD_TOKEN_AUDIENCE", str, "")
    token_leeway_s: float = _env("HERALD_TOKEN_LEEWAY", parse_duration, 5.0)
    max_body_bytes: int = _env("HERALD_MAX_BODY", _positive_int, 256 * 1024)
    max_batch_body_bytes: int = _env("HERALD_MAX_BATCH_BODY", _positive_int, 4 * 1024 * 1024)
    action_wait_s: float = _env("HERALD_ACTION_WAIT", parse_duration, 1.0)
    request_timeout_s: float = _env("HERALD_REQUEST_TIMEOUT", parse_duration, 30.0)
    dev_mode: bool = _env("HERALD_DEV", _bool, False)
    api_workers: int = _env("HERALD_API_WORKERS", _positive_int, 1)
    max_page: int = _env("HERALD_MAX_PAGE", _positive_int, 100)
    api_rate_key: str = _env("HERALD_API_RATE_KEY", _rate, "5000/s")
    api_rate_user: str = _env("HERALD_API_RATE_USER", _rate, "50/s")
    # Topic fan-out (consumers/fanout/): recipients per step and per second at most.
    fanout_batch: int = _env("HERALD_FANOUT_BATCH", _positive_int, 1000)
    fanout_rate: str = _env("HERALD_FANOUT_RATE", _rate, "100000/s")
    # Per-tenant request limits (every key and user of a tenant together), "tenant=rate"
    # pairs; "*" for every tenant not named, "-" for the default tenant. Empty: none.
    tenant_rates: tuple[tuple[str, str], ...] = _env("HERALD_TENANT_RATES", _tenant_rates, ())
    # Per-tenant preference defaults, JSON {"tenant": {category: {channel: bool}}}: what
    # applies where the user's own preferences say nothing ("-" = default tenant).
    tenant_preferences: str = _env("HERALD_TENANT_PREFERENCES", _json_preferences, "")
    api_max_inflight: int = _env("HERALD_API_MAX_INFLIGHT", _positive_int, 2000)
    ready_max_lag_s: float = _env("HERALD_READY_MAX_LAG", parse_duration, 30.0)
    access_log: bool = _env("HERALD_ACCESS_LOG", _bool, True)
    digest_window_s: float = _env("HERALD_DIGEST_WINDOW", parse_duration, 3600.0)
    # --- live push (api/live/): SSE and WebSocket connections of one API process
    live_max_connections: int = _env("HERALD_LIVE_MAX_CONNECTIONS", _positive_int, 10000)
    live_max_per_user: int = _env("HERALD_LIVE_MAX_PER_USER", _positive_int, 32)
    # Messages a connection may have queued before it counts as too slow (closed).
    live_buffer: int = _env("HERALD_LIVE_BUFFER", _positive_int, 256)
    live_heartbeat_s: float = _env("HERALD_LIVE_HEARTBEAT", parse_duration, 15.0)
    # Log entries a resume may read; a client further behind gets a reset message.
    live_resume_max: int = _env("HERALD_LIVE_RESUME_MAX", _positive_int, 10000)
    # --- browsers on other origins (api/cors.py): exact origins, or "*" without credentials
    cors_origins: tuple[str, ...] = _env("HERALD_CORS_ORIGINS", _csv, ())
    cors_credentials: bool = _env("HERALD_CORS_CREDENTIALS", _bool, False)
    cors_max_age_s: float = _env("HERALD_CORS_MAX_AGE", parse_duration, 600.0)
    # --- HTTPS for `herald run` / `herald api` (api/server.py): PEM files, both or neither
    tls_cert: str = _env("HERALD_TLS_CERT", str, "")
    tls_key: str = _env("HERALD_TLS_KEY", str, "")
    # --- Prometheus metrics of worker processes (consumers/metrics.py): `herald worker`
    # serves /metrics on HERALD_METRICS_HOST:HERALD_METRICS_PORT when the port is set
    # (0: any free port, logged); `herald run` shows them on the API's /metrics.
    metrics_port: int | None = _env("HERALD_METRICS_PORT", int, None)
    metrics_host: str = _env("HERALD_METRICS_HOST", str, "127.0.0.1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) plus overrides.

        Raises SettingsError naming the variable for an invalid value. Unknown
        ``HERALD_*`` names and Kubernetes service links (``HERALD_PORT=tcp://…``) are
        skipped: see streams/environment.py, which reports them.
        """
        env = os.environ if environ is None else environ
        ignore = skipped(env, cls.variables())
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata["env"]
            raw = env.get(name)
            if raw is None or name in ignore or (raw == "" and f.default is None):
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r} is invalid: {exc}") from exc
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def variables(cls) -> list[str]:
        """Every variable a setting is read from, in declaration order."""
        return [f.metadata["env"] for f in dataclasses.fields(cls)]

    def validate(self) -> None:
        """Cross-field checks; raises SettingsError naming the variable."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", self.prefix):
            raise SettingsError("HERALD_PREFIX must be 1-32 of A-Z a-z 0-9 _ . -")
        MasterKeys.parse(self.secret_keys)
        if self.partitions > 4096:
            raise SettingsError("HERALD_PARTITIONS must be at most 4096")
        if not 1 <= self.port <= 65535:
            raise SettingsError("HERALD_PORT must be between 1 and 65535")
        if self.max_batch > 10000:
            raise SettingsError("HERALD_MAX_BATCH must be at most 10000")
        if not 0 <= self.publish_replicas <= 16:
            raise SettingsError("HERALD_PUBLISH_REPLICAS must be between 0 and 16")
        if self.publish_durability == "replica" and self.publish_replicas < 1:
            raise SettingsError("HERALD_PUBLISH_DURABILITY=replica needs "
                                "HERALD_PUBLISH_REPLICAS of at least 1")
        if not 0.001 <= self.publish_wait_s <= 60:
            raise SettingsError("HERALD_PUBLISH_WAIT must be between 1ms and 60s")
        if self.token_secret and len(self.token_secret.encode()) < 32:
            raise SettingsError("HERALD_TOKEN_SECRET must be at least 32 bytes (HS256 key)")
        if self.max_page > 100:
            raise SettingsError("HERALD_MAX_PAGE must be at most 100")
        if self.digest_window_s < 1:
            raise SettingsError("HERALD_DIGEST_WINDOW must be at least 1s")
        if not 0.05 <= self.live_heartbeat_s <= 300:
            raise SettingsError("HERALD_LIVE_HEARTBEAT must be between 50ms and 5m")
        _check_cors(self.cors_origins, self.cors_credentials)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("HERALD_TLS_CERT and HERALD_TLS_KEY go together: set both "
                                "(PEM certificate chain and private key) or neither")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise SettingsError("HERALD_METRICS_PORT must be between 0 and 65535")
        _check_outbound(self)
        if bool(self.redis_cert) != bool(self.redis_key):
            raise SettingsError("HERALD_REDIS_CERT and HERALD_REDIS_KEY go together: set "
                                "both (the client certificate and its key) or neither")
        if self.redis_require_tls and self.redis_url and \
                not self.redis_url.lower().startswith("rediss://"):
            raise SettingsError("HERALD_REDIS_REQUIRE_TLS=true refuses a plaintext REDIS_URL: "
                                "use rediss://")
        if self.token_leeway_s > 300:
            raise SettingsError("HERALD_TOKEN_LEEWAY must be at most 5m")
        try:
            parse_service_keys(self.api_keys, self.service_keys)
        except ValueError as exc:
            raise SettingsError(f"HERALD_SERVICE_KEYS: {exc}") from exc

    @property
    def webhook_allow(self) -> tuple[IPNetwork, ...]:
        """``HERALD_WEBHOOK_ALLOW_CIDRS`` as networks (checked at start)."""
        return parse_cidrs(self.webhook_allow_cidrs)

    @property
    def archive_location(self) -> str:
        """``HERALD_ARCHIVE_URL``, or the data folder's ``archive`` as a file URL."""
        return self.archive_url or (self.data_dir / "archive").resolve().as_uri()

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and replay namespaces)."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def _check_cors(origins: tuple[str, ...], credentials: bool) -> None:
    """Origins are exact (``scheme://host[:port]``, no path) or ``*``; never ``*`` with
    credentials (browsers refuse it, and it would let any site act for a signed-in user)."""
    for origin in origins:
        if origin == "*":
            if credentials:
                raise SettingsError("HERALD_CORS_ORIGINS=* cannot be used with "
                                    "HERALD_CORS_CREDENTIALS=true: list the exact origins")
        elif not _ORIGIN.match(origin):
            raise SettingsError(f"HERALD_CORS_ORIGINS: {origin!r} is not an origin (use "
                                "scheme://host[:port], e.g. https://app.example.com, or *)")


def _check_outbound(settings: Settings) -> None:
    """Operator-chosen outbound URLs are exempt from the SSRF guard but must be URLs."""
    try:
        parse_cidrs(settings.webhook_allow_cidrs)
    except ValueError as exc:
        raise SettingsError(f"HERALD_WEBHOOK_ALLOW_CIDRS: {exc} (use e.g. "
                            "10.1.0.0/16,fd00::/8)") from exc
    for name, value in (("HERALD_SMS_BASE_URL", settings.sms_base_url),
                        ("HERALD_WECHAT_BASE_URL", settings.wechat_base_url),
                        ("HERALD_WEBHOOK_PROXY", settings.webhook_proxy)):
        if value and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise SettingsError(f"{name} must be an http(s) URL without credentials, "
                                f"query or fragment, got {value!r}")
