"""Rendering: the sandbox, locale fallback, plural rules and formats by locale, and
that a rendering depends on nothing but (definition, locale, data)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.consumers.templates.render import (
    Renderer,
    TemplateError,
    choose_locale,
    locale_candidates,
)
from herald.streams import codec

LOCALES = {"default": {"title": "Hello"}, "zh-CN": {"title": "你好"}, "zh": {"title": "您好"},
           "zh-Hant": {"title": "哈囉"}, "en-GB": {"title": "Hiya"}, "pt_BR": {"title": "Olá"}}


@pytest.mark.parametrize(("requested", "chosen"), [
    ("zh-CN", "zh-CN"),
    ("zh_cn", "zh-CN"),          # case and separator do not matter
    ("zh-SG", "zh"),             # zh-SG → zh
    ("zh", "zh"),
    ("zh-Hant-TW", "zh-Hant"),   # zh-Hant-TW → zh-Hant
    ("zh-Hant", "zh-Hant"),
    ("en-GB", "en-GB"),
    ("en-US", "default"),        # en-US → en (absent) → default
    ("en", "default"),
    ("pt-BR", "pt_BR"),
    ("fr", "default"),
    (None, "default"),
    ("", "default"),
])
def test_locale_fallback_table(requested: str | None, chosen: str) -> None:
    assert choose_locale(LOCALES, requested) == chosen


def test_candidates_go_from_specific_to_default() -> None:
    assert locale_candidates("zh-Hant-TW") == ["zh-Hant-TW", "zh-Hant", "zh", "default"]
    assert locale_candidates(None) == ["default"]


def test_plural_rules_and_formats_follow_the_locale() -> None:
    renderer = Renderer()
    definition = {"default_locale": "en", "locales": {
        "default": {"title": "{{ n }} {{ plural(n, one='item', other='items') }}",
                    "body": "{{ price|currency('CNY') }} · {{ big|number }} · "
                            "{{ when|date('long') }} · {{ share|percent }}"},
        "ru": {"title": "{{ n }} {{ plural(n, one='товар', few='товара', many='товаров', "
                        "other='товара') }}",
               "body": "{{ big|number }} · {{ when|date('long') }}"},
        "zh-CN": {"title": "{{ n }} 件商品",
                  "body": "{{ price|currency('CNY') }} · "
                          "{{ when|datetime('short', tz='Asia/Shanghai') }}"},
    }}
    data = {"price": 1234.5, "big": 1234567.25, "when": "2026-03-01T18:30:00Z", "share": 0.25}
    assert renderer.render(definition, "en", {**data, "n": 1}).title == "1 item"
    en = renderer.render(definition, "en-US", {**data, "n": 5})
    assert en.title == "5 items"
    assert en.body == "CN¥1,234.50 · 1,234,567.25 · March 1, 2026 · 25%"
    assert [renderer.render(definition, "ru", {**data, "n": n}).title for n in (1, 3, 5, 21)] == \
        ["1 товар", "3 товара", "5 товаров", "21 товар"]
    assert renderer.render(definition, "ru", {**data, "n": 1}).body.startswith(
        "1\xa0234\xa0567,25 · 1 марта 2026")  # CLDR: no-break spaces
    zh = renderer.render(definition, "zh-CN", {**data, "n": 5})
    assert zh.locale == "zh-CN" and zh.body == "¥1,234.50 · 2026/3/2 02:30"


def test_channel_variants_render_and_fall_back_to_the_default_entry() -> None:
    definition = {"locales": {
        "default": {"title": "Code {{ code }}",
                    "channels": {"sms": {"template_code": "SMS_1", "params": {"c": "{{ code }}"}},
                                 "push": {"title": "Code", "body": "{{ code }}"}}},
        "zh": {"title": "验证码 {{ code }}",
               "channels": {"sms": {"template_code": "SMS_2", "params": ["{{ code }}"]}}}}}
    zh = Renderer().render(definition, "zh-CN", {"code": "4321"})
    assert zh.title == "验证码 4321" and zh.locale == "zh"
    assert zh.variants == {"sms": {"template_code": "SMS_2", "params": ["4321"]},
                           "push": {"title": "Code", "body": "4321"}}


@pytest.mark.parametrize(("title", "data", "path", "text"), [
    ("{{ order_id }", {}, "locales.default.title", "line 1"),
    ("{{ order_id }}", {}, "locales.default.title", "'order_id' is undefined"),
    ("{{ x.__class__.__mro__ }}", {"x": 1}, "locales.default.title", "sandbox"),
    ("{{ items.append(1) }}", {"items": []}, "locales.default.title", "sandbox"),
    ("{{ w|date('long', tz='Not/AZone') }}", {"w": 0}, "locales.default.title",
     "Unknown timezone"),
    ("{{ w|date }}", {"w": "not a date"}, "locales.default.title", "isoformat"),
    ("{{ plural(n, one='a') }}", {"n": 1}, "locales.default.title", "other="),
    ("{{ 'x' * 300 }}", {}, "locales.default.title", "the limit is 200"),
    ("{{ '' }}", {}, "locales.default.title", "renders empty"),
])
def test_errors_name_their_place(title: str, data: dict[str, Any], path: str,
                                 text: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Renderer().render({"locales": {"default": {"title": title}}}, None, data)
    assert caught.value.path == path and text in caught.value.message, caught.value


def test_a_title_over_the_limit_can_be_cut_instead() -> None:
    done = Renderer().render({"locales": {"default": {"title": "{{ 'x' * 300 }}"}}}, None, {},
                             clip=True)
    assert len(done.title) == 200 and done.title.endswith("…")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(data=st.fixed_dictionaries({"name": st.text(min_size=1, max_size=30),
                                   "n": st.integers(0, 10**6),
                                   "amount": st.floats(-1e6, 1e6, allow_nan=False),
                                   "when": st.integers(0, 4 * 10**12),
                                   "extra": json_values}),
       locale=st.sampled_from(["en", "zh-CN", "zh-TW", "ru", "ar", "fr", None]))
def test_rendering_is_a_function_of_definition_locale_and_data(
        data: dict[str, Any], locale: str | None) -> None:
    definition = {"default_locale": "en", "locales": {
        "default": {"title": "{{ name|cut(50) }}: {{ n }} {{ plural(n, one='x', other='xs') }}",
                    "body": "{{ amount|number('#,##0.00') }} {{ when|datetime('medium') }} "
                            "{{ extra|tojson }}",
                    "channels": {"sms": {"params": {"n": "{{ n|number }}"}}}},
        "zh": {"title": "{{ name|cut(50) }}：{{ n }} 条", "body": "{{ when|date('full') }}"},
        "ar": {"title": "{{ n }} {{ plural(n, zero='z', one='o', two='t', few='f', many='m', "
                      "other='x') }}"},
    }}
    first = Renderer().render(definition, locale, data)
    # What replay reads back: the definition as the projection stored it (msgpack), and
    # the data as the log carried it; a fresh renderer with nothing cached.
    stored = codec.unpack_value(codec.pack_value(definition))
    again = Renderer().render(stored, first.locale, codec.unpack_value(codec.pack_value(data)))
    assert again == first
