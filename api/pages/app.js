// Herald demo page: a user of the <herald-inbox> element (/v1/inbox.js), nothing more.
//
// The page only decides who the user is and where the token comes from: in development
// (HERALD_DEV) it mints one for any user with POST /v1/dev/token; otherwise it asks for
// a token (`herald token USER`). Both elements — the bell in the top bar and the inline
// inbox — share one HeraldClient; the list, badge, actions and live updates are theirs.
import { HeraldClient } from "/v1/client.js";
import "/v1/inbox.js";

const $ = (id) => document.getElementById(id);
const DEV = document.body.dataset.dev === "true";
const widgets = [$("bell"), $("inbox")];
let user = null;
let signin = null; // resolves the token typed into the sign-in dialog

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3500);
}

function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part + "===".slice((part.length + 3) % 4)))));
  } catch (e) { return {}; }
}

async function devToken() {
  const res = await fetch(`/v1/dev/token?user=${encodeURIComponent(user)}`, { method: "POST" });
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || res.statusText);
  return data.token;
}

function askToken(error) {
  sessionStorage.removeItem("herald.token");
  $("signin").hidden = false;
  $("signin-error").hidden = !error;
  $("signin-error").textContent = error ? t("signin.bad", { why: error }) : "";
  $("signin-token").focus();
  return new Promise((resolve) => { signin = resolve; });
}

// The app's token callback: the widgets call it once, and with refresh after a 401 or
// when a live stream ends with token_expired.
async function getToken({ refresh }) {
  if (DEV) return devToken();
  const kept = sessionStorage.getItem("herald.token");
  if (kept && !refresh) return kept;
  return askToken(refresh ? "expired or refused" : "");
}

function start(name) {
  user = name;
  $("who").hidden = false;
  $("who-name").textContent = user;
  $("who-initial").textContent = (user || "?").slice(0, 1).toUpperCase();
  $("dev-user-name").value = user;
  const client = new HeraldClient({ getToken });
  for (const el of widgets) el.client = client;
  start.client = client;
}

function setLanguage(lang) {
  setLang(lang);
  for (const el of widgets) el.setAttribute("lang", lang === "zh" ? "zh-CN" : "en");
}

function bind() {
  $("lang").addEventListener("click", () => setLanguage(LANG === "zh" ? "en" : "zh"));
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("signin-token").value.trim();
    if (!token) return;
    sessionStorage.setItem("herald.token", token);
    $("signin").hidden = true;
    if (signin) { signin(token); signin = null; } else start(claims(token).sub || "me");
  });
  $("dev-user").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("dev-user-name").value.trim();
    if (name) { localStorage.setItem("herald.user", name); start(name); }
  });
  $("dev-sample").addEventListener("click", async () => {
    try { await start.client.request("POST", "/v1/dev/users/me/sample"); }
    catch (e) { toast(e.message); }
  });
  $("inbox").addEventListener("herald-unread", (e) => {
    document.title = (e.detail.count ? `(${e.detail.count}) ` : "") + "Herald · Inbox";
  });
}

bind();
setLanguage(LANG);
const params = new URLSearchParams(location.search);
if (DEV) {
  $("dev").hidden = false;
  start(params.get("user") || localStorage.getItem("herald.user") || "alice");
} else {
  const token = params.get("token") || sessionStorage.getItem("herald.token");
  if (token) { sessionStorage.setItem("herald.token", token); start(claims(token).sub || "me"); }
  else askToken("").then((typed) => start(claims(typed).sub || "me"));
}
