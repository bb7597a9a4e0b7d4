// Herald browser client: /v1/client.js — an ES module with no dependencies.
//
//   import { HeraldClient } from "https://herald.example.com/v1/client.js";
//   const herald = new HeraldClient({
//     baseUrl: "https://herald.example.com",
//     getToken: async ({ refresh }) => (await fetch("/my-backend/herald-token")).text(),
//   });
//   const page = await herald.inbox({ status: "unread", limit: 20 });
//   const feed = herald.live({ onMessage: (m) => console.log(m.type, m.position) });
//
// Tokens: `getToken({ refresh })` is your code (your backend mints user tokens with
// HERALD_TOKEN_SECRET); it is called once, again with `refresh: true` after a 401 or
// when a live stream ends with `token_expired`, and concurrent calls share one promise.
//
// Live updates with gapless resume: Server-Sent Events with `?since=` (the last
// position seen) on every reconnect, so nothing is missed and — positions only grow —
// nothing is applied twice (older or equal positions are dropped). When EventSource
// is missing, or never connects while the REST API answers, the feed long-polls
// `GET …/inbox?after=POSITION&wait=25` instead (new items only). Errors of the API
// are HeraldError with the problem+json document.
"use strict";

export const VERSION = "1.0.0";
const LIVE_TYPES = ["ready", "reset", "heartbeat", "close", "item.created", "item.changed",
  "item.removed", "inbox.read_all"];
const BACKOFF_MS = 500;
const BACKOFF_MAX_MS = 15000;
const SSE_FAILURES_BEFORE_POLLING = 3;
const LONGPOLL_WAIT_S = 25;
const LONGPOLL_PAGES = 10;

/** An error answer of the API; `problem` is its problem+json document. */
export class HeraldError extends Error {
  constructor(status, problem) {
    const doc = problem && typeof problem === "object" ? problem : {};
    super(doc.detail || doc.title || `HTTP ${status}`);
    this.name = "HeraldError";
    this.status = status;
    this.problem = doc;
    this.errors = doc.errors || [];
    this.requestId = doc.request_id || null;
  }
}

/** -1, 0 or 1: log positions "ms-seq" in log order (seq may exceed 2^53). */
export function comparePositions(a, b) {
  const [am, as = "0"] = String(a).split("-");
  const [bm, bs = "0"] = String(b).split("-");
  const ms = Number(am) - Number(bm);
  if (ms) return ms < 0 ? -1 : 1;
  if (as.length !== bs.length) return as.length < bs.length ? -1 : 1;
  return as === bs ? 0 : (as < bs ? -1 : 1);
}

export class HeraldClient {
  /**
   * @param {object} options
   * @param {string} [options.baseUrl] the API's origin ("" for the page's own)
   * @param {string} [options.user] "me" (a user token's own inbox) or a user id
   * @param {string} [options.token] a fixed token, or:
   * @param {(o: {refresh: boolean}) => Promise<string>|string} [options.getToken]
   */
  constructor(options = {}) {
    this.baseUrl = String(options.baseUrl || "").replace(/\/+$/, "");
    this.user = options.user || "me";
    this._getToken = options.getToken || (options.token ? () => options.token : null);
    this._fetch = options.fetch || ((...args) => globalThis.fetch(...args));
    this._token = null;
    this._pending = null;
  }

  /** The current token; `refresh` asks getToken for a new one (calls coalesce). */
  async token({ refresh = false } = {}) {
    if (!this._getToken) throw new Error("HeraldClient: give token or getToken");
    if (this._token && !refresh && !this._pending) return this._token;
    if (!this._pending) {
      this._pending = Promise.resolve()
        .then(() => this._getToken({ refresh }))
        .then((token) => { this._token = String(token || "").trim(); return this._token; })
        .finally(() => { this._pending = null; });
    }
    return this._pending;
  }

  url(path, query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
    }
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  userPath(rest) {
    return `/v1/users/${encodeURIComponent(this.user)}${rest}`;
  }

  /** One API call: JSON in and out; a 401 refreshes the token once and retries. */
  async request(method, path, { query, body, signal } = {}) {
    for (let attempt = 0; ; attempt++) {
      const token = await this.token({ refresh: attempt > 0 });
      const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const res = await this._fetch(this.url(path, query), {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (res.status === 401 && attempt === 0) continue;
      let data = null;
      try { data = await res.json(); } catch (e) { data = null; }
      if (!res.ok) throw new HeraldError(res.status, data);
      return data;
    }
  }

  /** A page of the inbox, newest first: {items, next_cursor, unread_count}. */
  inbox({ status, limit, cursor, after, wait, signal } = {}) {
    return this.request("GET", this.userPath("/inbox"),
      { query: { status, limit, cursor, after, wait }, signal });
  }

  async unreadCount() {
    return (await this.request("GET", this.userPath("/unread_count"))).unread_count;
  }

  markRead(id) { return this._act(id, "read"); }
  markUnread(id) { return this._act(id, "unread"); }
  archive(id) { return this._act(id, "archive"); }
  remove(id) {
    return this.request("DELETE", this.userPath(`/inbox/${encodeURIComponent(id)}`));
  }
  markAllRead(upTo) {
    return this.request("POST", this.userPath("/inbox/read_all"),
      { body: upTo ? { up_to: upTo } : {} });
  }
  _act(id, verb) {
    return this.request("POST", this.userPath(`/inbox/${encodeURIComponent(id)}/${verb}`));
  }

  /** Live updates (see LiveFeed); close() it when done. */
  live(handlers = {}) {
    return new LiveFeed(this, handlers);
  }
}

/**
 * A live feed of the user's inbox changes. `onMessage(message)` gets each message once,
 * in log order (`ready`, `reset`, `item.created`, `item.changed`, `item.removed`,
 * `inbox.read_all`, `heartbeat`); `onState(state)` gets "connecting", "live",
 * "reconnecting" or "offline"; `transport` is "sse", "longpoll" or "auto".
 */
export class LiveFeed {
  constructor(client, { since = null, transport = "auto", onMessage, onState } = {}) {
    this.client = client;
    this.position = since;
    this.onMessage = onMessage || (() => {});
    this.onState = onState || (() => {});
    this.transport = transport === "auto"
      ? (typeof globalThis.EventSource === "function" ? "sse" : "longpoll") : transport;
    this.fallback = transport === "auto";
    this.state = "idle";
    this.failures = 0;
    this.connected = false; // reached the server at least once
    this.closed = false;
    this._source = null;
    this._timer = null;
    this._refresh = false;
    this._abort = null;
    this._start();
  }

  close() {
    this.closed = true;
    clearTimeout(this._timer);
    if (this._source) this._source.close();
    this._source = null;
    if (this._abort) this._abort.abort();
    this._setState("offline");
  }

  /** Drop the connection now and resume from the last position (tests, network change). */
  reconnect() {
    if (this.closed) return;
    if (this._source) { this._source.close(); this._source = null; }
    clearTimeout(this._timer);
    this._start();
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  _start() {
    if (this.closed) return;
    if (this.transport === "sse") this._openSse(); else this._poll();
  }

  async _openSse() {
    this._setState(this.connected ? "reconnecting" : "connecting");
    let token;
    try {
      if (this.failures > 0) await this.client.unreadCount(); // is it up? (refreshes on 401)
      token = await this.client.token({ refresh: this._refresh });
      this._refresh = false;
    } catch (e) {
      if (e instanceof HeraldError && e.status < 500 && e.status !== 429) {
        this._setState("offline"); // refused for good (401 after a refresh, 403)
        this.onMessage({ type: "error", error: e });
        return;
      }
      this._retry(true);
      return;
    }
    if (this.closed) return;
    const query = { access_token: token };
    if (this.position) query.since = this.position;
    const source = new EventSource(this.client.url(this.client.userPath("/events"), query));
    this._source = source;
    for (const type of LIVE_TYPES) {
      source.addEventListener(type, (event) => {
        if (source !== this._source || this.closed) return;
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        this._receive(message);
      });
    }
    source.onerror = () => {
      if (source !== this._source) return;
      source.close();
      this._source = null;
      this._retry(false);
    };
  }

  _retry(unreachable) {
    if (this.closed) return;
    this.failures += 1;
    if (this.transport === "sse" && this.fallback && !this.connected && !unreachable
        && this.failures >= SSE_FAILURES_BEFORE_POLLING) {
      this.transport = "longpoll"; // the API answers, its event stream never does
    }
    this._setState(unreachable ? "offline" : (this.connected ? "reconnecting" : "connecting"));
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MS * 2 ** (this.failures - 1));
    this._timer = setTimeout(() => this._start(), delay * (0.75 + Math.random() / 2));
  }

  _newer(position) {
    return !this.position || comparePositions(position, this.position) > 0;
  }

  _receive(message) {
    const type = message.type;
    if (type === "ready") {
      this.failures = 0;
      this.connected = true;
      if (message.position && this._newer(message.position)) this.position = message.position;
      this._setState("live");
      this.onMessage(message);
    } else if (type === "reset") {
      this.position = message.position || this.position;
      this.onMessage(message);
    } else if (type === "heartbeat") {
      if (message.position && this._newer(message.position)) this.position = message.position;
    } else if (type === "close") {
      if (this._source) { this._source.close(); this._source = null; }
      if (message.reason === "token_expired") {
        this._refresh = true;
        this._start(); // at once, with a new token, from the last position
      } else {
        this._retry(false);
      }
    } else if (message.position) {
      if (!this._newer(message.position)) return; // seen already: never applied twice
      this.position = message.position;
      this.onMessage(message);
    }
  }

  async _poll() {
    this._abort = new AbortController();
    const signal = this._abort.signal;
    this._setState(this.connected ? "reconnecting" : "connecting");
    try {
      if (!this.position) { // start from the newest item, as a stream's `ready` would
        const first = await this.client.inbox({ limit: 1, status: "all", signal });
        if (this.closed) return;
        this.position = first.items.length ? first.items[0].position : "0-1";
        this._receive({ type: "ready", position: this.position, resumed: false, replayed: 0 });
      } else if (!this.connected) {
        this._receive({ type: "ready", position: this.position, resumed: true, replayed: 0 });
      }
      while (!this.closed) {
        const after = this.position;
        let page = await this.client.inbox({ after, wait: LONGPOLL_WAIT_S, limit: 100, signal });
        this.failures = 0;
        this.connected = true;
        this._setState("live");
        const items = [...page.items];
        for (let n = 1; page.next_cursor && page.items.length && n < LONGPOLL_PAGES; n++) {
          page = await this.client.inbox({ after, cursor: page.next_cursor, limit: 100, signal });
          items.push(...page.items);
        }
        items.sort((a, b) => comparePositions(a.position, b.position));
        for (const item of items) {
          this._receive({ type: "item.created", position: item.position, item,
            unread_count: page.unread_count });
        }
      }
    } catch (e) {
      if (this.closed || signal.aborted) return;
      if (e instanceof HeraldError && e.status < 500 && e.status !== 429) {
        this._setState("offline");
        this.onMessage({ type: "error", error: e });
        return;
      }
      this._retry(!(e instanceof HeraldError));
    }
  }
}
