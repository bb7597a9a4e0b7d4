// <herald-inbox>: a drop-in notification inbox — /v1/inbox.js (ES module, no dependencies).
//
//   <script type="module" src="https://herald.example.com/v1/inbox.js"></script>
//   <herald-inbox base-url="https://herald.example.com" lang="zh-CN"></herald-inbox>
//   <script type="module">
//     document.querySelector("herald-inbox").tokenProvider =
//       async ({ refresh }) => (await fetch("/my-backend/herald-token")).text();
//   </script>
//
// A bell with the unread badge opening a panel below it, aligned to the bell's right
// edge (align="start": its left edge; mode="inline": no bell, the panel always shown):
// tabs (all, unread, archived), the list (newest first, "load more" pages back), mark
// read / unread, archive, mark all read; live over /v1/client.js (gapless resume, long-poll
// fallback). Themable with CSS custom properties on the element (--herald-accent,
// --herald-bg, --herald-fg, --herald-muted, --herald-border, --herald-unread-bg,
// --herald-badge-bg, --herald-badge-fg, --herald-radius, --herald-font,
// --herald-panel-width) and ::part(bell|badge|panel|item|tab); strings in English and
// Simplified Chinese (`lang`), or your own (`element.strings = {...}`). Keyboard: the
// bell is a button (Enter/Space), Escape closes the popover and returns to the bell,
// ↑/↓/Home/End move between items, ←/→ between tabs, Enter on an item marks it read.
// Screen readers: the bell says the unread count, new items are announced (aria-live).
// Events: herald-state {state}, herald-unread {count}, herald-message {message},
// herald-open {item} (an item activated: navigate to item.data.url, say).
"use strict";

import { comparePositions, HeraldClient } from "./client.js";
import { STRINGS } from "./inbox-strings.js";
import { itemRow } from "./inbox-row.js";
import { STYLE, svg } from "./inbox-style.js";

let SHEET = null;
function sharedSheet() {
  try {
    if (!SHEET) {
      SHEET = new CSSStyleSheet();
      SHEET.replaceSync(STYLE);
    }
    return SHEET;
  } catch {
    return null;
  }
}

export { STRINGS };

const TABS = ["all", "unread", "archived"];
export class HeraldInbox extends HTMLElement {
  static get observedAttributes() {
    return ["lang", "mode", "base-url", "token", "user", "transport"];
  }

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this._strings = {};
    this._tokenProvider = null;
    this._client = null;
    this._feed = null;
    this.items = new Map(); // id -> item, every loaded item whatever the tab
    this.filter = "all";
    this.unread = 0;
    this.cursor = null;
    this.loading = false;
    this._held = null; // messages that came while a page loaded
    this._render();
  }

  // ------------------------------------------------------------------ API
  get client() { return this._client; }
  set client(client) { this._client = client; this._restart(); }
  get tokenProvider() { return this._tokenProvider; }
  set tokenProvider(provider) { this._tokenProvider = provider; this._client = null; this._restart(); }
  get strings() { return this._strings; }
  set strings(strings) { this._strings = strings || {}; this._texts(); this._renderList(); }
  get state() { return this.getAttribute("state") || "idle"; }
  get open() { return this.getAttribute("mode") === "inline" || !this._panel.hidden; }

  connectedCallback() { this._restart(); }
  disconnectedCallback() { this._stop(); }
  attributeChangedCallback(name, before, after) {
    if (before === after) return;
    if (name === "lang" || name === "mode") { this._texts(); this._renderList(); return; }
    this._client = null;
    this._restart();
  }

  t(key, vars = {}) {
    const lang = this._lang();
    let text = this._strings[key] ?? (STRINGS[lang] || {})[key] ?? STRINGS.en[key] ?? key;
    for (const [name, value] of Object.entries(vars)) text = text.replace(`{${name}}`, value);
    return text;
  }

  _lang() {
    const asked = this.getAttribute("lang") || document.documentElement.lang ||
      navigator.language || "en";
    return asked.toLowerCase().startsWith("zh") ? "zh-CN" : (STRINGS[asked] ? asked : "en");
  }

  // ------------------------------------------------------------ lifecycle
  _clientOrNull() {
    if (this._client) return this._client;
    const token = this.getAttribute("token");
    if (!this._tokenProvider && !token) return null;
    this._client = new HeraldClient({
      baseUrl: this.getAttribute("base-url") || "", user: this.getAttribute("user") || "me",
      token, getToken: this._tokenProvider || undefined,
    });
    return this._client;
  }

  _restart() {
    if (this._restarting) return; // attributes set one by one start it once
    this._restarting = true;
    queueMicrotask(() => { this._restarting = false; this._start(); });
  }

  _start() {
    this._stop();
    if (!this.isConnected) return;
    const client = this._clientOrNull();
    if (!client) return;
    this._generation = (this._generation || 0) + 1; // answers of an earlier client are dropped
    this.items.clear();
    this.cursor = null;
    this._loaded = false;
    this._held = null;
    this.loading = false;
    this._renderList();
    this._feed = client.live({
      transport: this.getAttribute("transport") || "auto",
      onMessage: (m) => this._onMessage(m),
      onState: (s) => this._onState(s),
    });
  }

  _stop() {
    if (this._feed) this._feed.close();
    this._feed = null;
  }

  /** Drop the live connection and resume (no gap, no repeat). */
  reconnect() { if (this._feed) this._feed.reconnect(); }

  // ------------------------------------------------------------- messages
  _onState(state) {
    this.setAttribute("state", state);
    const el = this._root.querySelector(".state");
    el.dataset.state = state;
    el.textContent = this.t(`state.${state}`);
    this._emit("herald-state", { state });
  }

  _onMessage(message) {
    this._emit("herald-message", { message });
    if (message.type === "error") { this._announce(this.t("error", { why: message.error.message })); return; }
    if (message.type === "ready") { if (!message.resumed || !this._loaded) this._load(); return; }
    if (message.type === "reset") { this.items.clear(); this._announce(this.t("refreshed")); this._load(); return; }
    if (this._held) { this._held.push(message); return; }
    this._apply(message);
    this._renderList();
  }

  _apply(message) {
    if (typeof message.unread_count === "number") this._setUnread(message.unread_count);
    if (message.type === "item.created") {
      const fresh = !this.items.has(message.item.id);
      this.items.set(message.item.id, message.item);
      if (fresh) this._announce(this.t("announce", { title: message.item.title }));
    } else if (message.type === "item.changed") {
      if (this.items.has(message.item.id)) this.items.set(message.item.id, message.item);
    } else if (message.type === "item.removed") {
      this.items.delete(message.id);
    } else if (message.type === "inbox.read_all") {
      for (const item of this.items.values()) {
        if (!item.read_at && !item.archived && comparePositions(item.position, message.up_to) <= 0) {
          this.items.set(item.id, { ...item, read_at: message.read_at });
        }
      }
    }
  }

  async _load(more = false) {
    const client = this._clientOrNull();
    if (!client) return;
    const generation = this._generation;
    this._held = this._held || [];
    this.loading = true;
    this._renderList();
    try {
      const page = await client.inbox({ status: this.filter, limit: this._pageSize(),
        cursor: more ? this.cursor : undefined });
      if (generation !== this._generation) return; // another user or client meanwhile
      if (!more) {
        for (const [id, item] of this.items) if (this._visible(item)) this.items.delete(id);
      }
      for (const item of page.items) this.items.set(item.id, item);
      this.cursor = page.next_cursor;
      this._setUnread(page.unread_count);
      this._loaded = true;
    } catch (e) {
      this._announce(this.t("error", { why: e.message }));
    }
    this.loading = false;
    const held = this._held || [];
    this._held = null;
    for (const message of held) this._apply(message);
    this._renderList();
  }

  _pageSize() { return Math.min(100, Math.max(1, Number(this.getAttribute("page-size")) || 20)); }

  _setUnread(n) {
    const count = Math.max(0, n | 0);
    if (count === this.unread && this.hasAttribute("unread")) return;
    this.unread = count;
    this.setAttribute("unread", String(count));
    this._emit("herald-unread", { count });
    this._texts();
  }

  // -------------------------------------------------------------- actions
  async _act(item, verb) {
    try {
      const answer = verb === "read_all"
        ? await this._client.markAllRead()
        : await this._client[{ read: "markRead", unread: "markUnread", archive: "archive" }[verb]](item.id);
      if (answer && answer.id) { this.items.set(answer.id, answer); this._renderList(); }
      if (answer && typeof answer.unread_count === "number") this._setUnread(answer.unread_count);
    } catch (e) {
      this._announce(this.t("error", { why: e.message }));
    }
  }

  _select(filter, focus = false) {
    if (!TABS.includes(filter)) return;
    this.filter = filter;
    this.cursor = null;
    for (const tab of this._root.querySelectorAll('[role="tab"]')) {
      const on = tab.dataset.filter === filter;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on && focus) tab.focus();
    }
    this._renderList();
    this._load();
  }

  /** Open or close the popover (not in mode="inline"). */
  toggle(open = this._panel.hidden) {
    if (this.getAttribute("mode") === "inline") return;
    this._panel.hidden = !open;
    this._bell.setAttribute("aria-expanded", String(open));
    if (open) (this._list.querySelector('[tabindex="0"]') || this._markAll).focus();
    else this._bell.focus();
  }

  // ------------------------------------------------------------- rendering
  _render() {
    // a constructed style sheet, so pages with a strict Content-Security-Policy (no
    // 'unsafe-inline' styles) show the element; a <style> only where it is unsupported
    const adopt = "adoptedStyleSheets" in this.shadowRoot && sharedSheet();
    if (adopt) this.shadowRoot.adoptedStyleSheets = [adopt];
    this.shadowRoot.innerHTML = `${adopt ? "" : `<style>${STYLE}</style>`}
      <div class="root">
        <button class="bell" part="bell" type="button" aria-haspopup="true" aria-expanded="false"
                aria-controls="panel">${svg("bell", 20)}<span class="badge" part="badge" aria-hidden="true" hidden>0</span></button>
        <section class="panel" id="panel" part="panel" hidden>
          <header><h2><span class="heading"></span><span class="state" role="status" data-state="idle"></span></h2>
            <button class="link mark-all" type="button"></button></header>
          <div role="tablist">${TABS.map((f) => `<button role="tab" type="button" part="tab"
            data-filter="${f}" aria-controls="list" aria-selected="${f === "all"}"
            tabindex="${f === "all" ? 0 : -1}"></button>`).join("")}</div>
          <ul id="list" role="list"></ul>
          <div class="empty" hidden><strong></strong><span></span></div>
          <button class="more" type="button" hidden></button>
        </section>
        <div class="sr-only announce" aria-live="polite" aria-atomic="true"></div>
      </div>`;
    this._root = this.shadowRoot;
    this._bell = this._root.querySelector(".bell");
    this._panel = this._root.querySelector(".panel");
    this._list = this._root.querySelector("ul");
    this._markAll = this._root.querySelector(".mark-all");
    this._header = this._root.querySelector("header");
    this._bell.addEventListener("click", () => this.toggle());
    this._markAll.addEventListener("click", () => this._act(null, "read_all"));
    this._root.querySelector(".more").addEventListener("click", () => this._load(true));
    const tablist = this._root.querySelector('[role="tablist"]');
    tablist.addEventListener("click", (e) => {
      const tab = e.target.closest('[role="tab"]');
      if (tab) this._select(tab.dataset.filter);
    });
    tablist.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      this._select(TABS[(TABS.indexOf(this.filter) + step + TABS.length) % TABS.length], true);
    });
    this._list.addEventListener("keydown", (e) => this._onListKey(e));
    this._root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this._panel.hidden && this.getAttribute("mode") !== "inline") {
        e.stopPropagation();
        this.toggle(false);
      }
    });
    this._texts();
  }

  _texts() {
    if (!this._root) return;
    const inline = this.getAttribute("mode") === "inline";
    if (inline && this._bell.parentNode !== this._header) {
      this._header.prepend(this._bell); // the bell and its badge head the open panel
      this._panel.hidden = false;
      this._bell.tabIndex = -1;
      this._bell.removeAttribute("aria-expanded");
    } else if (!inline && this._bell.parentNode === this._header) {
      this._root.querySelector(".root").prepend(this._bell);
      this._panel.hidden = true;
      this._bell.tabIndex = 0;
      this._bell.setAttribute("aria-expanded", "false");
    }
    this._root.querySelector(".heading").textContent = this.t("title");
    this._root.querySelector(".panel").setAttribute("aria-label", this.t("title"));
    this._root.querySelector('[role="tablist"]').setAttribute("aria-label", this.t("tabs"));
    for (const tab of this._root.querySelectorAll('[role="tab"]')) tab.textContent = this.t(tab.dataset.filter);
    this._markAll.textContent = this.t("markAll");
    this._markAll.disabled = this.unread === 0;
    this._root.querySelector(".more").textContent = this.t("more");
    this._root.querySelector(".empty strong").textContent = this.t("empty");
    this._root.querySelector(".empty span").textContent = this.t("emptyBody");
    const state = this._root.querySelector(".state");
    if (state.dataset.state !== "idle") state.textContent = this.t(`state.${state.dataset.state}`);
    const badge = this._root.querySelector(".badge");
    badge.hidden = this.unread === 0;
    badge.textContent = this.unread > 99 ? "99+" : String(this.unread);
    this._bell.setAttribute("aria-label", this.unread
      ? this.t("bellUnread", { n: this.unread }) : this.t("bell"));
  }

  _visible(item) {
    if (this.filter === "archived") return item.archived;
    if (this.filter === "unread") return !item.archived && !item.read_at;
    return true;
  }

  _renderList() {
    if (!this._list) return;
    const focused = this._root.activeElement && this._root.activeElement.closest?.(".item");
    const focusedId = focused ? focused.dataset.id : null;
    const items = [...this.items.values()].filter((i) => this._visible(i))
      .sort((a, b) => comparePositions(b.position, a.position));
    const view = { t: (key, vars) => this.t(key, vars), lang: this._lang(),
      act: (item, verb) => this._act(item, verb), open: (item) => this._activate(item),
      focus: (li) => this._roving(li) };
    this._list.replaceChildren(...items.map((item, index) => itemRow(item, index === 0, view)));
    this._root.querySelector(".empty").hidden = items.length > 0 || this.loading;
    this._root.querySelector(".more").hidden = !this.cursor;
    if (focusedId) {
      const again = this._list.querySelector(`[data-id="${CSS.escape(focusedId)}"]`);
      if (again) { this._roving(again); again.focus(); }
    }
  }

  _activate(item) {
    if (!item.read_at) this._act(item, "read");
    this._emit("herald-open", { item });
  }

  _roving(li) {
    for (const other of this._list.children) other.tabIndex = other === li ? 0 : -1;
  }

  _onListKey(e) {
    const li = e.target.closest(".item");
    if (!li || e.target !== li) return;
    const rows = [...this._list.children];
    const at = rows.indexOf(li);
    const next = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rows.length - 1 }[e.key];
    if (next !== undefined) {
      e.preventDefault();
      const target = rows[Math.max(0, Math.min(rows.length - 1, next))];
      this._roving(target);
      target.focus();
    } else if (e.key === "Enter") {
      e.preventDefault();
      const item = this.items.get(li.dataset.id);
      if (item) this._activate(item);
    }
  }

  _announce(text) {
    const region = this._root.querySelector(".announce");
    region.textContent = "";
    setTimeout(() => { region.textContent = text; }, 50);
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }
}

if (typeof customElements !== "undefined" && !customElements.get("herald-inbox")) {
  customElements.define("herald-inbox", HeraldInbox);
}
