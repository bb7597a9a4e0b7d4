"""The registration check: every string compiles, every locale renders with the example;
and the projection of a registered version."""

from __future__ import annotations

from typing import Any

import pytest

from herald.consumers.projection.base import Context
from herald.consumers.templates.definition import check_definition, template_defaults
from herald.consumers.templates.projection import project_template
from herald.consumers.templates.render import Renderer, TemplateError
from herald.streams import codec
from herald.streams.events import TEMPLATES_USER, TemplateRegistered, new_envelope
from herald.streams.keys import Keys

GOOD = {
    "category": "orders", "channels": ["in_app", "sms"], "priority": "critical",
    "locales": {"default": {"title": "Order {{ order_id }} shipped",
                            "channels": {"sms": {"template_code": "SMS_1",
                                                 "params": {"order": "{{ order_id }}"}}}},
                "zh-CN": {"title": "订单 {{ order_id }} 已发货"}},
    "example": {"order_id": "42"},
}


def test_a_good_definition_passes_and_gives_its_defaults() -> None:
    check_definition(GOOD, Renderer())
    assert template_defaults(GOOD) == {"category": "orders", "channels": ["in_app", "sms"],
                                       "priority": "critical"}


@pytest.mark.parametrize(("change", "path"), [
    ({"locales": {"zh": {"title": "x"}}}, "locales"),
    ({"locales": {"default": {"title": "x"}, "not a locale": {"title": "y"}}},
     "locales.not a locale"),
    ({"locales": {"default": {"title": "x"}, "zh-CN": {"title": "a"}, "zh_cn": {"title": "b"}}},
     "locales.zh_cn"),
    ({"locales": {"default": {"title": "x"}, "zh": {"title": "{{ missing }}"}}},
     "locales.zh.title"),
    ({"locales": {"default": {"title": "x", "channels": {"sms": {"params": ["{{ a "]}}}}},
     "locales.default.channels.sms.params.0"),
    ({"example": ["not", "an", "object"]}, "example"),
])
def test_template_errors_are_found_at_registration(change: dict[str, Any], path: str) -> None:
    with pytest.raises(TemplateError) as caught:
        check_definition({**GOOD, **change}, Renderer())
    assert caught.value.path == path, caught.value


def test_a_version_is_projected_once_with_its_definition() -> None:
    env = new_envelope(TEMPLATES_USER, TemplateRegistered(template_id="order.shipped",
                                                          version=3, definition=GOOD), 8)
    ctx = Context(partition=5, ns="v", keys=Keys("h"))
    writes = project_template(env, "1-0", ctx)
    assert writes[0][:3] == ("call", "HSET", "h:{p05}:v:tpl:order.shipped")
    fields = dict(zip(writes[0][3::2], writes[0][4::2], strict=True))
    assert codec.unpack_value(fields["v3"]) == GOOD and fields["latest"] == "3"
    assert fields["ts3"] == str(env.time)
    assert writes[1] == ("call", "ZADD", "h:{p05}:v:tpls", "0", "order.shipped")
