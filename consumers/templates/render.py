"""Rendering: a template version, a locale and the notification's data → its text.

Every string of a locale's entry (title, body, each channel variant's fields) is a
Jinja2 template, run in Jinja's sandbox (``ImmutableSandboxedEnvironment``: no
attribute access to internals, no mutation of the data, ranges capped) with
``StrictUndefined``, so a name the data lacks is an error, never an empty string.
The data is the notification's ``data`` map; ``locale`` holds the locale used.

Locale-aware helpers (Babel, CLDR data), in the locale chosen:

- ``plural(n, one=…, other=…, zero=…, two=…, few=…, many=…)``: the form CLDR's
  plural rule picks for ``n`` (``other`` when that form is not given);
- filters ``number`` (``|number`` or ``|number("#,##0.00")``), ``percent``,
  ``currency("CNY")``, ``date``, ``datetime``, ``time`` (``format`` = short, medium,
  long, full or a CLDR pattern; ``tz`` = an IANA zone, default UTC) — a time is an
  ISO-8601 string or milliseconds since the epoch (Herald's times);
- ``cut(n)``: at most ``n`` characters, ending with ``…`` when cut.

Locale choice (:func:`locale_candidates`): the requested tag, then each shorter
prefix (``zh-Hant-TW`` → ``zh-Hant`` → ``zh``), then the template's ``default``
entry; the first the template defines wins (tags match regardless of case and ``_``).
The ``default`` entry is written in ``default_locale`` (``en`` unless the template
says), which gives it its number and date formats and plural rules. A channel variant
the chosen locale lacks comes from the ``default`` entry.

Determinism: the output is a function of (definition, locale, data) — nothing reads
a clock or the environment — so rendering again from a notification's recorded
template version, locale and data gives the same text (a Babel upgrade may change
CLDR formats; the text a notification was sent with is in the log anyway).

Failure modes: :class:`TemplateError` naming the place (``locales.zh-CN.title``)
for syntax errors, names the data lacks, sandbox refusals, bad filter arguments
and rendered text over the limits.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herald.streams.errors import HeraldError

MAX_TITLE = 200
MAX_BODY = 5000
MAX_FIELD = 5000  # any other rendered string (a channel variant's field)
COMPILED_MAX = 4096  # compiled template strings kept per process
PLURAL_FORMS = ("zero", "one", "two", "few", "many", "other")
DEFAULT = "default"  # the locale entry every template has: the last fallback
DEFAULT_LANGUAGE = "en"  # the language of the default entry when the template names none


class TemplateError(HeraldError, ValueError):
    """Raised when a template cannot be compiled or rendered; ``path`` names where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one notification is sent with (recorded in its event)."""

    locale: str
    title: str
    body: str = ""
    variants: dict[str, Any] = field(default_factory=dict)


def normalize_locale(tag: str) -> str:
    """``zh_cn`` → ``zh-CN``: BCP 47 casing (language lower, script title, region upper)."""
    parts = tag.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) in (2, 3):
            out.append(part.upper())
        else:
            out.append(part)
    return "-".join(out)


def babel_locale(tag: str) -> Locale:
    """The Babel locale of a tag: the tag, else its language, else English (formats and
    plural rules of a locale CLDR does not know fall back; the text is the template's)."""
    parts = normalize_locale(tag).split("-")
    for end in range(len(parts), 0, -1):
        try:
            return Locale.parse("-".join(parts[:end]), sep="-")
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    return Locale("en")


def locale_candidates(requested: str | None) -> list[str]:
    """The locales to try, most specific first, ending with ``default`` (module doc)."""
    out: list[str] = []
    if requested and requested != DEFAULT:
        parts = normalize_locale(requested).split("-")
        for end in range(len(parts), 0, -1):
            out.append("-".join(parts[:end]))
    out.append(DEFAULT)
    return out


def choose_locale(locales: Mapping[str, Any], requested: str | None) -> str:
    """The key of ``locales`` to render (matched without regard to case or ``_``)."""
    known = {key if key == DEFAULT else normalize_locale(key): key for key in locales}
    for candidate in locale_candidates(requested):
        if candidate in known:
            return known[candidate]
    raise TemplateError("locales", "has no 'default' entry")


# ------------------------------------------------------------------ helpers


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, bool):
        raise TypeError("a time is an ISO-8601 string or epoch milliseconds")
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    if isinstance(value, str):
        moment = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    raise TypeError("a time is an ISO-8601 string or epoch milliseconds")


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    return value if not isinstance(value, str) else float(value)


_LOCALES: dict[str, Locale] = {}


def _locale_of(ctx: Any) -> Locale:
    tag = str(ctx.get("locale") or "en")
    found = _LOCALES.get(tag)
    if found is None:
        found = _LOCALES[tag] = babel_locale(tag)
    return found


def plural(locale: Locale, n: Any, **forms: str) -> str:
    """The form of ``forms`` that ``locale``'s CLDR plural rule picks for ``n``."""
    unknown = set(forms) - set(PLURAL_FORMS)
    if unknown:
        raise TypeError(f"plural forms are {', '.join(PLURAL_FORMS)}; not {sorted(unknown)}")
    if "other" not in forms:
        raise TypeError("plural() needs at least other=")
    return forms.get(locale.plural_form(abs(_number(n))), forms["other"])


# Filters read the locale from the render's context (compiled templates are shared).
@jinja2.pass_context
def _number_filter(ctx: Any, value: Any, format: str | None = None) -> str:
    return babel_numbers.format_decimal(_number(value), format=format, locale=_locale_of(ctx))


@jinja2.pass_context
def _percent_filter(ctx: Any, value: Any, format: str | None = None) -> str:
    return babel_numbers.format_percent(_number(value), format=format, locale=_locale_of(ctx))


@jinja2.pass_context
def _currency_filter(ctx: Any, value: Any, currency: str) -> str:
    return babel_numbers.format_currency(_number(value), currency, locale=_locale_of(ctx))


@jinja2.pass_context
def _date_filter(ctx: Any, value: Any, format: str = "medium", tz: str = "UTC") -> str:
    moment = _moment(value).astimezone(babel_dates.get_timezone(tz))
    return babel_dates.format_date(moment.date(), format=format, locale=_locale_of(ctx))


@jinja2.pass_context
def _datetime_filter(ctx: Any, value: Any, format: str = "medium",
                     tz: str = "UTC") -> str:
    return babel_dates.format_datetime(_moment(value), format=format,
                                       tzinfo=babel_dates.get_timezone(tz),
                                       locale=_locale_of(ctx))


@jinja2.pass_context
def _time_filter(ctx: Any, value: Any, format: str = "short", tz: str = "UTC") -> str:
    return babel_dates.format_time(_moment(value), format=format,
                                   tzinfo=babel_dates.get_timezone(tz), locale=_locale_of(ctx))


def cut(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


class Renderer:
    """Compiles and renders template strings; one per process (compiled strings cached)."""

    def __init__(self) -> None:
        self.env = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
            trim_blocks=True, lstrip_blocks=True,
        )
        self.env.filters.update(cut=cut, number=_number_filter, percent=_percent_filter,
                                currency=_currency_filter, date=_date_filter,
                                datetime=_datetime_filter, time=_time_filter)
        self._compiled: OrderedDict[str, jinja2.Template] = OrderedDict()

    def compile(self, source: str, path: str) -> jinja2.Template:
        """The compiled template of ``source``; TemplateError naming ``path``."""
        found = self._compiled.get(source)
        if found is not None:
            self._compiled.move_to_end(source)
            return found
        try:
            template = self.env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(path, f"line {exc.lineno}: {exc.message}") from exc
        self._compiled[source] = template
        if len(self._compiled) > COMPILED_MAX:
            self._compiled.popitem(last=False)
        return template

    def text(self, source: str, path: str, context: Mapping[str, Any], limit: int,
             clip: bool = False) -> str:
        """One string rendered; TemplateError for any failure (never another exception).
        ``clip``: text over ``limit`` is cut (with ``…``) instead of refused."""
        template = self.compile(source, path)
        try:
            out = template.render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateError(path, f"{exc.message} (add it to the data)") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(path, f"refused by the sandbox: {exc}") from exc
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, LookupError,
                AttributeError, RecursionError, OverflowError) as exc:
            raise TemplateError(path, f"{type(exc).__name__}: {exc}") from exc
        if len(out) > limit:
            if clip:
                return cut(out, limit)
            raise TemplateError(path, f"renders {len(out)} characters; the limit is {limit}")
        return out

    def value(self, value: Any, path: str, context: Mapping[str, Any]) -> Any:
        """A variant's value with every string rendered (maps and lists kept)."""
        if isinstance(value, str):
            return self.text(value, path, context, MAX_FIELD)
        if isinstance(value, Mapping):
            return {str(k): self.value(v, f"{path}.{k}", context) for k, v in value.items()}
        if isinstance(value, Sequence):
            return [self.value(v, f"{path}.{i}", context) for i, v in enumerate(value)]
        return value

    def render(self, definition: Mapping[str, Any], requested: str | None,
               data: Mapping[str, Any], *, clip: bool = False,
               limits: tuple[int, int] = (MAX_TITLE, MAX_BODY)) -> Rendered:
        """The notification a definition makes of ``data`` in the best locale.
        ``clip``: a title or body over ``limits`` is cut instead of refused."""
        return self.render_locale(definition, choose_locale(definition["locales"], requested),
                                  data, clip=clip, limits=limits)

    def render_locale(self, definition: Mapping[str, Any], chosen: str,
                      data: Mapping[str, Any], *, clip: bool = False,
                      limits: tuple[int, int] = (MAX_TITLE, MAX_BODY)) -> Rendered:
        """Render exactly the locale ``chosen`` (a key of the definition's locales)."""
        locales: Mapping[str, Any] = definition["locales"]
        entry: Mapping[str, Any] = locales[chosen]
        language = str(definition.get("default_locale") or DEFAULT_LANGUAGE)
        tag = normalize_locale(language if chosen == DEFAULT else chosen)
        locale = babel_locale(tag)
        context: dict[str, Any] = {**data, "locale": tag,
                                   "plural": functools.partial(plural, locale)}
        base = f"locales.{chosen}"
        title = self.text(str(entry["title"]), f"{base}.title", context, limits[0], clip)
        if not title.strip():
            raise TemplateError(f"{base}.title", "renders empty")
        body = self.text(str(entry.get("body", "")), f"{base}.body", context, limits[1], clip)
        own = entry.get("channels") or {}
        channels = {**(locales[DEFAULT].get("channels") or {}), **own}
        variants: dict[str, Any] = {}
        for channel, variant in sorted(channels.items()):
            where = base if channel in own else f"locales.{DEFAULT}"
            variants[channel] = self.value(variant, f"{where}.channels.{channel}", context)
        return Rendered(chosen if chosen == DEFAULT else tag, title, body, variants)
