// One item of <herald-inbox> (/v1/inbox-row.js): a focusable list row with its title,
// category, body, relative time and action buttons. Text goes in as text (never HTML).
"use strict";

import { svg } from "./inbox-style.js";

/** The relative time of an ISO instant ("2 minutes ago", "2分钟前"). */
export function relativeTime(iso, lang) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const fmt = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  for (const [unit, size] of [["year", 31536000], ["month", 2592000], ["day", 86400],
    ["hour", 3600], ["minute", 60]]) {
    if (Math.abs(seconds) >= size) return fmt.format(Math.round(seconds / size), unit);
  }
  return fmt.format(Math.min(0, Math.round(seconds)), "second");
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function button(icon, label, onClick) {
  const b = element("button", "icon-btn");
  b.type = "button";
  b.dataset.action = icon;
  b.setAttribute("aria-label", label);
  b.title = label;
  b.innerHTML = svg(icon);
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
}

/**
 * The row of `item`; `first` holds the list's one tab stop. `view`: `t(key, vars)`,
 * `lang`, `act(item, verb)`, `open(item)`, `focus(li)`.
 */
export function itemRow(item, first, view) {
  const li = element("li", `item${item.read_at ? "" : " unread"}`);
  li.setAttribute("part", "item");
  li.dataset.id = item.id;
  li.tabIndex = first ? 0 : -1;
  li.setAttribute("aria-label", `${item.read_at ? "" : `${view.t("unread")}: `}${item.title}`);
  const title = element("div", "item-title", item.title);
  if (item.category) title.append(element("span", "cat", item.category));
  const time = element("time", "item-meta", relativeTime(item.created_at, view.lang));
  time.dateTime = item.created_at;
  const main = element("div");
  main.append(title, element("div", "item-body", item.body || ""), time);
  const actions = element("div", "actions");
  const verb = item.read_at ? "unread" : "read";
  actions.append(button(verb, view.t(item.read_at ? "markUnread" : "markRead"),
    () => view.act(item, verb)));
  if (!item.archived) {
    actions.append(button("archive", view.t("archive"), () => view.act(item, "archive")));
  }
  li.append(element("span", "dot"), main, actions);
  li.addEventListener("click", () => view.open(item));
  li.addEventListener("focus", () => view.focus(li));
  return li;
}
