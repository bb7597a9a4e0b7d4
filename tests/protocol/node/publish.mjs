// A Herald producer in Node.js, written from PROTOCOL.md alone.
//
//   node publish.mjs publish --user U --title T [--body B] [--key K] [--channels a,b]
//        publishes one notification.created through the append script and prints
//        {"id", "partition", "position", "duplicate"} as JSON
//   node publish.mjs check VECTORS_DIR
//        checks this implementation against the conformance vectors (exit 1 on a miss)
//
// Environment: REDIS_URL (default redis://127.0.0.1:6379/0), HERALD_PREFIX (herald),
// HERALD_REPO (the Herald checkout holding streams/lua, default ../../..).
import { readFileSync } from "node:fs";
import { randomBytes, createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { encode } from "@msgpack/msgpack";
import { blake2b } from "@noble/hashes/blake2.js";
import Redis from "ioredis";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = process.env.HERALD_REPO || resolve(HERE, "../../..");
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

// ---------------------------------------------------------------- the partition
export function partitionOf(user, partitions) {
  const digest = blake2b(Buffer.from(user, "utf8"), { dkLen: 8 }); // digest size 8
  return Number(Buffer.from(digest).readBigUInt64BE(0) % BigInt(partitions));
}

export function tag(prefix, partition) {
  return `${prefix}:{p${String(partition).padStart(2, "0")}}`;
}

// ------------------------------------------------------------------- event ids
export function eventId(ms, random, partition) {
  let value = (BigInt(ms) << 80n) | (BigInt(random) << 12n) | BigInt(partition);
  let out = "";
  for (let i = 0; i < 26; i++) {
    out = ALPHABET[Number(value & 31n)] + out;
    value >>= 5n;
  }
  return out;
}

function freshRandom() {
  return BigInt("0x" + randomBytes(9).toString("hex")) >> 4n; // 68 bits
}

// ------------------------------------------------------------------- the entry
// The event map in the canonical key order f i t v u ts d k c s; @msgpack/msgpack
// writes the shortest encoding of each value, strings as str, bytes as bin.
export function entryBytes(event) {
  const doc = {};
  for (const key of ["f", "i", "t", "v", "u", "ts", "d", "k", "c", "s"]) {
    if (event[key] !== undefined && event[key] !== null) doc[key] = event[key];
  }
  return Buffer.from(encode(doc));
}

function created(user, fields, id, ms, key) {
  const d = {
    title: fields.title,
    body: fields.body ?? "",
    category: fields.category ?? "general",
    data: fields.data ?? {},
    channels: fields.channels ?? ["in_app"],
    recipients: {},
  };
  return { f: 1, i: id, t: "notification.created", v: 1, u: user, ts: ms, d, k: key };
}

// ARGV[3]: an array of str, three per event. By hand, because Lua's cmsgpack has no
// bin type and a msgpack library writes bytes as bin. Herald's producer writes the
// str headers fixstr / str16 / str32 (no str8); cmsgpack reads any, the vector's bytes
// are Herald's.
function strHeader(length) {
  if (length < 32) return Buffer.from([0xa0 | length]);
  if (length < 0x10000) return Buffer.from([0xda, length >> 8, length & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xdb;
  b.writeUInt32BE(length, 1);
  return b;
}

function arrayHeader(length) {
  if (length < 16) return Buffer.from([0x90 | length]);
  const b = Buffer.alloc(3);
  b[0] = 0xdc;
  b.writeUInt16BE(length, 1);
  return b;
}

export function scriptArgument(events) {
  const parts = [arrayHeader(events.length * 3)];
  for (const [entry, id, key] of events) {
    for (const value of [entry, Buffer.from(id, "utf8"), Buffer.from(key || "", "utf8")]) {
      parts.push(strHeader(value.length), value);
    }
  }
  return Buffer.concat(parts);
}

// ------------------------------------------------------------------ the script
export function scriptText() {
  const lua = join(REPO, "streams", "lua");
  return readFileSync(join(lua, "producer_append.lua"), "utf8")
    .split(/(?<=\n)/)
    .map((line) => line.startsWith("--@include ")
      ? readFileSync(join(lua, line.slice(11).trim() + ".lua"), "utf8") : line)
    .join("");
}

async function append(redis, prefix, span, partition, events) {
  const source = scriptText();
  let sha = await redis.script("LOAD", source);
  let bucket = Math.floor(Date.now() / span);
  const argument = scriptArgument(events);
  for (let attempt = 0; attempt < 3; attempt++) {
    const root = tag(prefix, partition);
    const keys = [`${root}:log`];
    for (const d of [-2, -1, 0, 1]) keys.push(`${root}:idem:${span}:${bucket + d}`);
    try {
      return await redis.evalsha(sha, 5, ...keys, String(span), String(bucket), argument);
    } catch (error) {
      const message = String(error.message || error);
      const moved = /^BUCKET (\d+)/.exec(message);
      if (moved) {
        bucket = Number(moved[1]); // nothing was written: again, in the server's bucket
      } else if (message.startsWith("NOSCRIPT")) {
        sha = await redis.script("LOAD", source);
      } else {
        throw error;
      }
    }
  }
  throw new Error("the append script kept refusing the call");
}

// ---------------------------------------------------------------------- publish
function options(args) {
  const out = {};
  for (let i = 0; i < args.length; i += 2) out[args[i].replace(/^--/, "")] = args[i + 1];
  return out;
}

async function publish(args) {
  const opts = options(args);
  const prefix = process.env.HERALD_PREFIX || "herald";
  const redis = new Redis(process.env.REDIS_URL || "redis://127.0.0.1:6379/0",
    { maxRetriesPerRequest: 2 });
  try {
    const [partitions, windowMs] = await redis.hmget(`${prefix}:meta`, "partitions",
      "dedupe_window_ms");
    if (!partitions) throw new Error(`${prefix}:meta has no partition count: is Herald set up?`);
    const span = Number(windowMs || 86400000);
    const partition = partitionOf(opts.user, Number(partitions));
    const ms = Date.now();
    const id = eventId(ms, freshRandom(), partition);
    const fields = { title: opts.title, body: opts.body,
      channels: opts.channels ? opts.channels.split(",") : undefined };
    const entry = entryBytes(created(opts.user, fields, id, ms, opts.key));
    const [reply] = await append(redis, prefix, span, partition, [[entry, id, opts.key]]);
    const duplicate = Array.isArray(reply);
    console.log(JSON.stringify({
      id: duplicate ? String(reply[0]) : id, partition,
      position: String(duplicate ? reply[1] : reply), duplicate,
    }));
  } finally {
    redis.disconnect();
  }
}

// ----------------------------------------------------------------------- check
function check(folder) {
  const read = (name) => JSON.parse(readFileSync(join(folder, `${name}.json`), "utf8"));
  const misses = [];
  const expect = (ok, what) => { if (!ok) misses.push(what); };
  for (const c of read("partitions").cases) {
    expect(partitionOf(c.user, c.partitions) === c.partition, `partition of ${c.user}`);
    expect(tag("herald", c.partition) === c.tag, `tag of ${c.partition}`);
  }
  for (const c of read("ids").cases) {
    expect(eventId(c.ms, BigInt("0x" + c.random_hex), c.partition) === c.id, `id ${c.id}`);
  }
  for (const c of read("entries").cases) {
    const event = { ...c.event };
    if (event.s_hex !== undefined) {
      event.s = Buffer.from(event.s_hex, "hex");
      delete event.s_hex;
    }
    expect(entryBytes(event).toString("hex") === c.entry_hex, `entry: ${c.name}`);
    expect(partitionOf(event.u, read("entries").partitions) === c.partition,
      `entry partition: ${c.name}`);
  }
  const script = read("script");
  expect(createHash("sha1").update(scriptText()).digest("hex") === script.sha1, "script sha1");
  const call = script.call;
  const events = call.events.map((e) => [Buffer.from(e.entry_hex, "hex"), e.id, e.key]);
  expect(scriptArgument(events).toString("hex") === call.argv3_hex, "ARGV[3]");
  if (misses.length) {
    console.error("misses:\n  " + misses.join("\n  "));
    process.exit(1);
  }
  console.log(`all vectors hold (${read("entries").cases.length} entries)`);
}

const [command, ...rest] = process.argv.slice(2);
if (command === "publish") {
  publish(rest).catch((error) => { console.error(String(error)); process.exit(1); });
} else if (command === "check") {
  check(rest[0]);
} else {
  console.error("usage: node publish.mjs publish --user U --title T [--key K] | check DIR");
  process.exit(2);
}
