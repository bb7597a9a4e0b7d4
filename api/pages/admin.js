// Herald operator page: polls GET /v1/admin/status with a service key (kept in this tab).
"use strict";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;
let key = sessionStorage.getItem("herald.serviceKey");
let timer = null;
let last = null;

const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString(LANG === "zh" ? "zh-CN" : "en"));
const rate = (n) => (n === null || n === undefined ? "—" : (Math.round(n * 10) / 10).toLocaleString());

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function card(label, value, kind, hint) {
  return el("div", { className: `card ${kind || ""}` }, el("div", { className: "label" }, label),
    el("div", { className: "value" }, value), hint ? el("div", { className: "hint" }, hint) : "");
}
function table(node, head, rows) {
  const thead = el("thead", {}, el("tr", {}, ...head.map(([text, num]) => el("th", { className: num ? "num" : "" }, text))));
  node.replaceChildren(thead, el("tbody", {}, ...rows));
}
function td(text, className) { return el("td", { className: className || "" }, text); }

function render(doc) {
  const s = doc.status;
  const projector = s.partitions.map((p) => p.groups.find((g) => g.name === "projector")).filter(Boolean);
  const lag = projector.reduce((a, g) => a + (g.lag || 0), 0);
  const tp = doc.throughput;
  $("cards").replaceChildren(
    card(t("admin.entries"), fmt(s.totals.length)),
    card(t("admin.appended"), tp ? rate(tp.appended_per_s) : "—"),
    card(t("admin.projected"), tp ? rate((tp.processed_per_s || {}).projector) : "—"),
    card(t("admin.lag"), fmt(lag), lag > 0 ? "warn" : "", t("admin.entriesHint")),
    card(t("admin.pending"), fmt(s.totals.projector_pending), s.totals.projector_pending ? "warn" : ""),
    card(t("admin.dead"), fmt(s.totals.dead_letters), s.totals.dead_letters ? "bad" : ""),
    card(t("admin.unowned"), fmt(s.totals.projector_unowned), s.totals.projector_unowned ? "bad" : ""),
    card(t("admin.live"), doc.live ? fmt(doc.live.connections) : "—"),
  );
  const groups = new Map();
  for (const p of s.partitions) {
    for (const g of p.groups) {
      const agg = groups.get(g.name) || { consumers: new Set(), lag: 0, pending: 0, owned: 0, total: 0 };
      if (g.owner) { agg.owned += 1; agg.consumers.add(g.owner); }
      agg.total += 1; agg.lag += g.lag || 0; agg.pending += g.pending;
      groups.set(g.name, agg);
    }
  }
  table($("groups"), [[t("admin.col.group")], [t("admin.col.consumers"), 1], [t("admin.col.owned"), 1],
    [t("admin.col.lag"), 1], [t("admin.col.pending"), 1], [t("admin.col.rate"), 1]],
  [...groups.entries()].map(([name, g]) => el("tr", { className: g.owned < g.total ? "bad" : g.lag ? "warn" : "" },
    td(name, "mono"), td(fmt(g.consumers.size), "num"), td(`${g.owned} / ${g.total}`, "num"),
    td(fmt(g.lag), "num"), td(fmt(g.pending), "num"),
    td(tp && tp.processed_per_s ? rate(tp.processed_per_s[name]) : "—", "num"))));
  table($("partitions"), [[t("admin.col.p")], [t("admin.col.length"), 1], [t("admin.col.last")],
    [t("admin.col.ckpt")], [t("admin.col.owner")], [t("admin.col.lease"), 1], [t("admin.col.lag"), 1],
    [t("admin.col.pending"), 1], [t("admin.col.dead"), 1], [t("admin.col.ns")]],
  s.partitions.map((p) => {
    const g = p.groups.find((x) => x.name === "projector") || { lag: null, pending: 0, owner: null, lease_ms: 0 };
    const kind = p.dead_letters ? "bad" : !g.owner && p.length ? "bad" : g.lag ? "warn" : "";
    return el("tr", { className: kind }, td(p.partition), td(fmt(p.length), "num"),
      td(p.last_position || "—", "mono"), td(p.checkpoint || "—", "mono"),
      td(g.owner ? el("span", { className: "mono" }, g.owner) : el("span", { className: "pill none" }, t("admin.nobody"))),
      td(g.owner ? `${(g.lease_ms / 1000).toFixed(1)} s` : "—", "num"), td(fmt(g.lag), "num"),
      td(fmt(g.pending), "num"), td(fmt(p.dead_letters), "num"), td(p.ns, "mono"));
  }));
  $("prefix").textContent = `prefix ${s.prefix}`;
  const live = doc.live;
  $("live").replaceChildren(...(live ? [
    card(t("live.connections"), fmt(live.connections), "", t("live.users", { n: fmt(live.users) })),
    card(t("live.partitions"), fmt(live.partitions_subscribed.length)),
    card(t("live.signals"), fmt(live.signals), "", t("live.ignored", { n: fmt(live.signals_ignored) })),
    card(t("live.messages"), fmt(live.messages)),
    card(t("live.refused"), fmt(live.refused), live.refused ? "warn" : ""),
    card(t("live.slow"), fmt(live.slow_closed), live.slow_closed ? "warn" : ""),
    card(t("live.resets"), fmt(live.resets)),
    card(t("live.waiters"), fmt(live.waiters)),
  ] : [card(t("admin.live"), "—")]));
  $("updated").textContent = t("admin.updated", { t: new Date(doc.generated_at).toLocaleTimeString() });
}

async function refresh() {
  clearTimeout(timer);
  try {
    const res = await fetch("/v1/admin/status", { headers: { Authorization: `Bearer ${key}` } });
    const doc = await res.json();
    if (res.status === 401 || res.status === 403) { askKey(doc.detail); return; }
    if (!res.ok) throw new Error(doc.detail || res.statusText);
    last = doc;
    $("error").hidden = true;
    render(doc);
  } catch (e) {
    $("error").hidden = false;
    $("error").textContent = t("admin.error", { why: e.message });
  }
  if ($("auto").checked) timer = setTimeout(refresh, REFRESH_MS);
}
function askKey(error) {
  $("keybox").hidden = false;
  $("key-error").hidden = !error;
  $("key-error").textContent = error || "";
  $("key").focus();
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  key = $("key").value.trim();
  sessionStorage.setItem("herald.serviceKey", key);
  $("keybox").hidden = true;
  $("forget").hidden = false;
  refresh();
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem("herald.serviceKey"); key = null; askKey(); });
$("auto").addEventListener("change", () => { if ($("auto").checked) refresh(); else clearTimeout(timer); });
$("lang").addEventListener("click", () => { setLang(LANG === "zh" ? "en" : "zh"); if (last) render(last); });
applyI18n();
if (key) { $("forget").hidden = false; refresh(); } else askKey();
