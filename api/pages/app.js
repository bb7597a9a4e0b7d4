// Herald demo inbox: the public API with a user token, live over SSE with resume.
//
// Flow: open the event stream first; its `ready` message says from which log position
// the stream is live, then the list is loaded over REST, and every later message
// (item.created / item.changed / item.removed / inbox.read_all) is applied to it. When
// the connection drops, EventSource reconnects with Last-Event-ID and the server
// replays what was missed (no reload, no gap); a `reset` means "refetch".
"use strict";

const $ = (id) => document.getElementById(id);
const DEV = document.body.dataset.dev === "true";
// Category → [icon, background, colour]; unknown categories get the bell.
const ICONS = {
  billing: ["card", "#dcfce7", "#15803d"], security: ["lock", "#fee2e2", "#b91c1c"],
  comments: ["message", "#dbeafe", "#1d4ed8"], social: ["message", "#dbeafe", "#1d4ed8"],
  orders: ["package", "#fef3c7", "#b45309"], system: ["gear", "#e5e7eb", "#374151"],
  team: ["users", "#ede9fe", "#6d28d9"], reminders: ["clock", "#fce7f3", "#be185d"],
};
const DEFAULT_ICON = ["bell", "#e0e7ff", "#4338ca"];
const SVG = {
  card: '<rect x="2" y="5" width="20" height="14" rx="2"/><path d="M2 10h20M6 15h4"/>',
  lock: '<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>',
  message: '<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/>',
  package: '<path d="M21 8 12 3 3 8v8l9 5 9-5z"/><path d="m3 8 9 5 9-5M12 13v8"/>',
  gear: '<circle cx="12" cy="12" r="3"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9 7 7M17 17l2.1 2.1M4.9 19.1 7 17M17 7l2.1-2.1"/>',
  users: '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0M16 4.5a3.5 3.5 0 0 1 0 7M18 14.5a6.5 6.5 0 0 1 3.5 5.5"/>',
  clock: '<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>',
  bell: '<path d="M6 8a6 6 0 0 1 12 0c0 7 3 9 3 9H3s3-2 3-9"/><path d="M10.3 21a1.94 1.94 0 0 0 3.4 0"/>',
  read: '<path d="M20 6 9 17l-5-5"/>',
  unread: '<circle cx="12" cy="12" r="4"/>',
  archive: '<rect x="3" y="4" width="18" height="4" rx="1"/><path d="M5 8v11a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8"/><path d="M10 12h4"/>',
};
const state = {
  token: null, user: null, items: new Map(), filter: "all", unread: 0, lastId: null,
  es: null, loaded: false, retry: 0, retryTimer: null, fetching: false, pending: [],
};

// ------------------------------------------------------------------ helpers
function posKey(p) {
  const [ms, seq] = String(p).split("-");
  return [Number(ms), seq.length, seq];
}
function cmpPos(a, b) {
  const x = posKey(a), y = posKey(b);
  for (let i = 0; i < 3; i++) { if (x[i] < y[i]) return -1; if (x[i] > y[i]) return 1; }
  return 0;
}
function svg(name, size) {
  const px = size || 16;
  return `<svg width="${px}" height="${px}" viewBox="0 0 24 24" fill="none" stroke="currentColor" ` +
    `stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${SVG[name]}</svg>`;
}
function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const fmt = new Intl.RelativeTimeFormat(LANG === "zh" ? "zh-CN" : "en", { numeric: "auto" });
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return fmt.format(Math.round(seconds / size), unit);
  }
  return fmt.format(Math.min(0, Math.round(seconds)), "second");
}
function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part + "===".slice((part.length + 3) % 4)))));
  } catch (e) { return {}; }
}
let toastTimer = null;
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3500);
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.detail) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------------- state
function setConn(kind) {
  const el = $("conn");
  el.className = `conn conn--${kind}`;
  el.querySelector("span").dataset.i18n = `conn.${kind}`;
  el.querySelector("span").textContent = t(`conn.${kind}`);
  el.title = state.lastId ? `position ${state.lastId}` : "";
  el.dataset.state = kind;
}
function setUnread(n) {
  state.unread = Math.max(0, n | 0);
  const badge = $("badge");
  badge.hidden = state.unread === 0;
  badge.textContent = state.unread > 99 ? "99+" : String(state.unread);
  $("nav-unread").textContent = String(state.unread);
  $("subheading").textContent = t("head.sub", { n: state.unread });
  document.title = (state.unread ? `(${state.unread}) ` : "") + "Herald · Inbox";
}
function visible(item) {
  if (state.filter === "archived") return item.archived;
  if (state.filter === "unread") return !item.archived && !item.read_at;
  return true;
}
function upsert(item, fresh) {
  const had = state.items.get(item.id);
  state.items.set(item.id, Object.assign({}, item, { fresh: fresh && !had }));
}

// ------------------------------------------------------------------ render
function render() {
  const list = $("list");
  const items = [...state.items.values()].filter(visible).sort((a, b) => cmpPos(b.position, a.position));
  list.replaceChildren(...items.map(row));
  $("empty").hidden = items.length > 0;
  $("heading").textContent = t(`head.${state.filter}`);
  for (const item of state.items.values()) item.fresh = false;
}
function row(item) {
  const li = document.createElement("li");
  li.className = "item" + (item.read_at ? "" : " unread") + (item.fresh ? " fresh" : "");
  li.dataset.id = item.id;
  li.tabIndex = 0;
  const dot = document.createElement("span");
  dot.className = "dot";
  const icon = document.createElement("span");
  const [glyph, background, colour] = ICONS[item.category] || DEFAULT_ICON;
  icon.className = "icon";
  icon.style.background = background;
  icon.style.color = colour;
  icon.innerHTML = svg(glyph, 20);
  const main = document.createElement("div");
  main.className = "item-main";
  const title = document.createElement("div");
  title.className = "item-title";
  const strong = document.createElement("strong");
  strong.textContent = item.title;
  const cat = document.createElement("span");
  cat.className = "cat";
  cat.textContent = item.category;
  title.append(strong, cat);
  const body = document.createElement("div");
  body.className = "item-body";
  body.textContent = item.body || "";
  const meta = document.createElement("div");
  meta.className = "item-meta";
  meta.textContent = ago(item.created_at);
  meta.title = item.created_at;
  main.append(title, body, meta);
  const actions = document.createElement("div");
  actions.className = "item-actions";
  actions.append(
    button(item.read_at ? "unread" : "read", item.read_at ? "action.unread" : "action.read",
      () => act(item.id, item.read_at ? "unread" : "read")),
  );
  if (!item.archived) actions.append(button("archive", "action.archive", () => act(item.id, "archive")));
  li.append(dot, icon, main, actions);
  li.addEventListener("click", () => { if (!item.read_at) act(item.id, "read"); });
  return li;
}
function button(iconName, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "icon-btn";
  b.dataset.action = iconName;
  b.title = t(label);
  b.setAttribute("aria-label", b.title);
  b.innerHTML = svg(iconName);
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
}

// ----------------------------------------------------------------- actions
async function act(id, verb) {
  try {
    const item = await api("POST", `/v1/users/me/inbox/${encodeURIComponent(id)}/${verb}`);
    if (item && item.id) { upsert(item, false); render(); }
  } catch (e) { toast(e.message); }
}
async function markAll() {
  try {
    const res = await api("POST", "/v1/users/me/inbox/read_all");
    if (res && typeof res.unread_count === "number") setUnread(res.unread_count);
  } catch (e) { toast(e.message); }
}
// Messages that arrive while the list loads are held and applied after it, in order,
// so a message the loaded page does not include yet is not lost.
async function loadInbox() {
  state.fetching = true;
  try {
    const page = await api("GET", `/v1/users/me/inbox?status=${state.filter}&limit=50`);
    state.items = new Map(page.items.map((i) => [i.id, i]));
    setUnread(page.unread_count);
    state.loaded = true;
  } catch (e) { toast(e.message); }
  state.fetching = false;
  const held = state.pending.splice(0);
  for (const apply of held) apply();
  render();
}

// -------------------------------------------------------------- live stream
function connect() {
  if (state.es) state.es.close();
  clearTimeout(state.retryTimer);
  setConn(state.loaded ? "reconnecting" : "connecting");
  const query = new URLSearchParams({ access_token: state.token });
  if (state.loaded && state.lastId) query.set("since", state.lastId);
  const es = new EventSource(`/v1/users/me/events?${query}`);
  state.es = es;
  const on = (type, fn) => es.addEventListener(type, (e) => {
    if (es !== state.es) return;
    const data = JSON.parse(e.data);
    if (data.position) state.lastId = data.position;
    const apply = () => {
      if (typeof data.unread_count === "number") setUnread(data.unread_count);
      fn(data);
    };
    if (state.fetching && type !== "ready" && type !== "reset") state.pending.push(apply);
    else apply();
  });
  on("ready", (d) => {
    state.retry = 0;
    setConn("live");
    if (!d.resumed || !state.loaded) loadInbox(); else render();
  });
  on("reset", () => { toast(t("toast.reset")); state.items.clear(); loadInbox(); setConn("live"); });
  on("item.created", (d) => {
    upsert(d.item, true);
    render();
    $("bell").classList.remove("ring");
    void $("bell").offsetWidth;
    $("bell").classList.add("ring");
    toast(t("toast.new", { title: d.item.title }));
  });
  on("item.changed", (d) => { upsert(d.item, false); render(); });
  on("item.removed", (d) => { state.items.delete(d.id); render(); });
  on("inbox.read_all", (d) => {
    for (const item of state.items.values()) {
      if (!item.read_at && !item.archived && cmpPos(item.position, d.up_to) <= 0) item.read_at = d.read_at;
    }
    render();
  });
  on("heartbeat", () => {});
  on("close", (d) => {
    if (d.reason === "token_expired") { es.close(); renewAndReconnect(); return; }
    setConn("reconnecting"); // EventSource reconnects by itself, with Last-Event-ID
  });
  es.onerror = () => {
    if (es !== state.es) return;
    if (es.readyState === EventSource.CLOSED) { setConn("offline"); scheduleReconnect(); }
    else setConn("reconnecting");
  };
}
function scheduleReconnect() {
  const delay = Math.min(30000, 1000 * 2 ** state.retry++) * (0.75 + Math.random() / 2);
  state.retryTimer = setTimeout(renewAndReconnect, delay);
}
async function renewAndReconnect() {
  if (DEV) {
    try { await mintToken(state.user); } catch (e) { setConn("offline"); scheduleReconnect(); return; }
  } else {
    try { await api("GET", "/v1/users/me/unread_count"); } catch (e) {
      if (e.status === 401) { setConn("offline"); showSignin(e.message); return; }
    }
  }
  connect();
}

// ------------------------------------------------------------------ sign-in
async function mintToken(user) {
  const res = await fetch(`/v1/dev/token?user=${encodeURIComponent(user)}`, { method: "POST" });
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || res.statusText);
  state.token = data.token;
  return data.token;
}
function showWho() {
  $("who").hidden = false;
  $("who-name").textContent = state.user;
  $("who-initial").textContent = (state.user || "?").slice(0, 1).toUpperCase();
  $("dev-user-name").value = state.user;
}
async function signInAs(user) {
  await mintToken(user);
  state.user = user;
  localStorage.setItem("herald.user", user);
  begin();
}
function begin() {
  state.items.clear();
  state.loaded = false;
  state.lastId = null;
  setUnread(0);
  showWho();
  render();
  connect();
}
function showSignin(error) {
  $("signin").hidden = false;
  $("signin-error").hidden = !error;
  $("signin-error").textContent = error ? t("signin.bad", { why: error }) : "";
  $("signin-token").focus();
}
async function useToken(token) {
  state.token = token.trim();
  try {
    await api("GET", "/v1/users/me/unread_count");
  } catch (e) { showSignin(e.message); return; }
  sessionStorage.setItem("herald.token", state.token);
  state.user = claims(state.token).sub || "me";
  $("signin").hidden = true;
  begin();
}

// --------------------------------------------------------------------- start
function bind() {
  $("lang").addEventListener("click", () => { setLang(LANG === "zh" ? "en" : "zh"); setConn($("conn").dataset.state || "connecting"); setUnread(state.unread); render(); });
  $("bell").addEventListener("click", () => selectFilter("unread"));
  $("mark-all").addEventListener("click", markAll);
  for (const el of document.querySelectorAll("[data-filter]")) {
    el.addEventListener("click", () => selectFilter(el.dataset.filter));
  }
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); useToken($("signin-token").value); });
  $("dev-user").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("dev-user-name").value.trim();
    if (user) signInAs(user).catch((err) => toast(err.message));
  });
  $("dev-sample").addEventListener("click", async () => {
    try { await api("POST", "/v1/dev/users/me/sample"); } catch (e) { toast(e.message); }
  });
  setInterval(render, 30000);
}
function selectFilter(filter) {
  state.filter = filter;
  for (const el of document.querySelectorAll("[data-filter]")) el.classList.toggle("active", el.dataset.filter === filter);
  render();
  loadInbox();
}

async function start() {
  applyI18n();
  bind();
  setUnread(0);
  const params = new URLSearchParams(location.search);
  if (DEV) {
    $("dev").hidden = false;
    const user = params.get("user") || localStorage.getItem("herald.user") || "alice";
    try { await signInAs(user); } catch (e) { setConn("offline"); toast(e.message); }
    return;
  }
  const token = params.get("token") || sessionStorage.getItem("herald.token");
  if (token) await useToken(token); else { setConn("offline"); showSignin(); }
}

start();
