"""The providers behind each channel, and which one the settings choose.

:data:`PROVIDERS` lists, per channel, every provider: the module and class that
implement it (each a :class:`~consumers.channels.base.Provider`), the settings it
needs and an optional deeper check of them. The settings choose:

- ``sms``: HERALD_SMS_PROVIDER = ``twilio`` (default), ``aliyun``, ``tencent``; or
  HERALD_SMS_PROVIDERS, an ordered list the channel falls back along
  (consumers/channels/fallback.py);
- ``wechat``: HERALD_WECHAT_PROVIDER = ``miniprogram`` (default), ``official``,
  ``wecom``;
- ``push``: HERALD_PUSH_PROVIDERS = some of ``fcm``, ``apns`` (a device's platform
  picks one of them for each device);
- ``webhook`` and ``email`` have one each (Standard Webhooks, SMTP).

:func:`check` runs when a worker starts its channel roles (consumers/roles.py): a
provider chosen explicitly (not the default), or one any of whose settings is set, must
have all it needs — else SettingsError naming the variables (``herald worker`` exits 2
with it). A default provider left unconfigured starts, and its sends fail with "not
configured" (as before providers were chosen).

Adding a provider: write ``consumers/channels/<name>.py`` with a class that has
``name`` (the channel), ``provider``, ``contact``, ``async send(message) ->
SendResult`` and ``async aclose()``; add its settings to streams/settings.py (and the
README's table); add one :class:`ProviderSpec` line below (and the name to the
channel's choice in streams/settings.py); test it against a fake of the provider's
API in tests/consumers/channels/. Nothing else changes: delivery, retries, rate
limits, templates and statuses work through the interface.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from herald.consumers.channels.base import Channel, Provider
from herald.streams.errors import SettingsError
from herald.streams.settings import Settings


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider of a channel (see the module doc)."""

    channel: str
    name: str
    module: str  # under herald.consumers.channels
    cls: str
    required: tuple[str, ...] = ()  # Settings fields that must be set
    own: tuple[str, ...] = ()  # Settings fields only it reads (set = configured)
    redis: bool = False  # its constructor takes the Redis client (shared tokens)
    check: Callable[[Settings], None] | None = None


def _fcm_check(settings: Settings) -> None:
    from herald.consumers.channels.fcm import service_account

    account = service_account(settings.fcm_credentials)
    if not (settings.fcm_project_id or account.get("project_id")):
        raise SettingsError("HERALD_FCM_PROJECT_ID is needed: the service account names "
                            "no project_id")


def _apns_check(settings: Settings) -> None:
    from herald.consumers.channels.apns import signing_key

    signing_key(settings.apns_private_key)


def _wecom_check(settings: Settings) -> None:
    if not settings.wecom_agent_id.isdigit():
        raise SettingsError("HERALD_WECOM_AGENT_ID must be the app's numeric AgentId")


_WECHAT = ("wechat_appid", "wechat_secret")
PROVIDERS: dict[str, dict[str, ProviderSpec]] = {
    "webhook": {"standard-webhooks": ProviderSpec("webhook", "standard-webhooks", "webhook",
                                                  "WebhookChannel")},
    "email": {"smtp": ProviderSpec("email", "smtp", "email", "EmailChannel")},
    "sms": {
        "twilio": ProviderSpec("sms", "twilio", "sms", "SmsChannel",
                               ("sms_account_sid", "sms_auth_token", "sms_from"),
                               ("sms_account_sid", "sms_auth_token", "sms_from")),
        "aliyun": ProviderSpec("sms", "aliyun", "aliyun_sms", "AliyunSmsChannel",
                               ("aliyun_access_key_id", "aliyun_access_key_secret",
                                "aliyun_sms_sign_name"),
                               ("aliyun_access_key_id", "aliyun_access_key_secret",
                                "aliyun_sms_sign_name", "aliyun_sms_template_code")),
        "tencent": ProviderSpec("sms", "tencent", "tencent_sms", "TencentSmsChannel",
                                ("tencent_secret_id", "tencent_secret_key",
                                 "tencent_sms_app_id", "tencent_sms_sign_name"),
                                ("tencent_secret_id", "tencent_secret_key",
                                 "tencent_sms_app_id", "tencent_sms_sign_name",
                                 "tencent_sms_template_id")),
    },
    "wechat": {
        "miniprogram": ProviderSpec("wechat", "miniprogram", "wechat", "WeChatChannel",
                                    _WECHAT, _WECHAT, redis=True),
        "official": ProviderSpec("wechat", "official", "wechat_official",
                                 "WeChatOfficialChannel", _WECHAT, _WECHAT, redis=True),
        "wecom": ProviderSpec("wechat", "wecom", "wecom", "WeComChannel",
                              ("wecom_corp_id", "wecom_secret", "wecom_agent_id"),
                              ("wecom_corp_id", "wecom_secret", "wecom_agent_id"), redis=True,
                              check=_wecom_check),
    },
    "push": {
        "fcm": ProviderSpec("push", "fcm", "fcm", "FcmProvider", ("fcm_credentials",),
                            ("fcm_credentials", "fcm_project_id"), redis=True,
                            check=_fcm_check),
        "apns": ProviderSpec("push", "apns", "apns", "ApnsProvider",
                             ("apns_team_id", "apns_key_id", "apns_private_key", "apns_topic"),
                             ("apns_team_id", "apns_key_id", "apns_private_key", "apns_topic"),
                             redis=True, check=_apns_check),
    },
}
# Where each channel's choice is read (a channel not listed has one provider).
CHOICE: dict[str, str] = {"sms": "sms_provider", "wechat": "wechat_provider",
                          "push": "push_providers"}
_DEFAULTS = {f.name: f.default for f in fields(Settings)}
_VARIABLES = {f.name: f.metadata["env"] for f in fields(Settings)}


def chosen(channel: str, settings: Settings) -> list[str]:
    """The providers the settings choose for ``channel`` (ValueError for an unknown one)."""
    if channel not in PROVIDERS:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(PROVIDERS)}")
    attr = CHOICE.get(channel)
    if attr is None:
        return list(PROVIDERS[channel])
    if channel == "sms" and settings.sms_providers:  # HERALD_SMS_PROVIDERS: a fallback list
        return list(settings.sms_providers)
    value = getattr(settings, attr)
    return list(value) if isinstance(value, tuple) else [value]


def open_provider(spec: ProviderSpec, settings: Settings, redis: Any) -> Provider:
    """An instance of the provider ``spec`` names."""
    module = importlib.import_module(f"herald.consumers.channels.{spec.module}")
    cls = getattr(module, spec.cls)
    provider: Provider = cls(settings, redis) if spec.redis else cls(settings)
    return provider


def open_channel(name: str, settings: Settings, redis: Any) -> Channel:
    """The channel ``name`` with its chosen provider(s); ValueError for an unknown name."""
    names = chosen(name, settings)
    if name == "push":
        from herald.consumers.channels.push import PushChannel

        return PushChannel({p: open_provider(PROVIDERS["push"][p], settings, redis)
                            for p in names})
    if len(names) > 1:  # an ordered fallback list (consumers/channels/fallback.py)
        from herald.consumers.channels.fallback import FallbackChannel

        return FallbackChannel(name, [open_provider(PROVIDERS[name][n], settings, redis)
                                      for n in names], settings, redis)
    return open_provider(PROVIDERS[name][names[0]], settings, redis)


def _explicit(spec: ProviderSpec, settings: Settings) -> bool:
    attr = CHOICE.get(spec.channel)
    picked = (attr is not None and getattr(settings, attr) != _DEFAULTS[attr]) or \
        (spec.channel == "sms" and spec.name in settings.sms_providers)
    return picked or any(getattr(settings, f) != _DEFAULTS[f] for f in spec.own)


def check(settings: Settings, channels: Sequence[str]) -> None:
    """Every configured provider of ``channels`` has what it needs (module doc);
    raises SettingsError naming the variables."""
    for channel in channels:
        if channel not in PROVIDERS:
            continue
        for name in chosen(channel, settings):
            spec = PROVIDERS[channel][name]
            if not _explicit(spec, settings):
                continue
            missing = [_VARIABLES[f] for f in spec.required if not getattr(settings, f)]
            if missing:
                raise SettingsError(f"the {name} provider of {channel} needs "
                                    f"{', '.join(missing)}")
            if spec.check is not None:
                spec.check(settings)
