#!/usr/bin/env bash
# A Herald producer in bash and valkey-cli, written from PROTOCOL.md alone.
#
#   publish.sh publish USER TITLE [IDEMPOTENCY_KEY]
#       one notification.created through the append script; prints
#       {"id", "partition", "position", "duplicate"} as JSON
#   publish.sh partition USER COUNT       the user's partition
#   publish.sh id MS RANDOM_HEX PARTITION an event id (RANDOM_HEX: 17 hex digits)
#   publish.sh entry ID USER TS TITLE [KEY]  the hex of a created event's entry bytes
#   publish.sh script                     the SHA-1 of the script text to load
#
# Environment: VALKEY_CLI (default valkey-cli), REDIS_URL (redis://127.0.0.1:6379/0),
# HERALD_PREFIX (herald), HERALD_REPO (the Herald checkout, default ../../..).
# Needs bash, coreutils (b2sum, od, date, sha1sum) and awk: no MessagePack library,
# the few types a created event needs are written by hand below.
set -euo pipefail

CLI=${VALKEY_CLI:-valkey-cli}
URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PREFIX=${HERALD_PREFIX:-herald}
REPO=${HERALD_REPO:-$(cd "$(dirname "$0")/../../.." && pwd)}
ALPHABET=0123456789ABCDEFGHJKMNPQRSTVWXYZ

# ------------------------------------------------------------------ the partition
partition() {  # USER COUNT: BLAKE2b with an 8-byte digest, big-endian, modulo COUNT
  local hex hi lo n=$2
  hex=$(printf '%s' "$1" | b2sum -l 64 | cut -c1-16)
  hi=$((16#${hex:0:8})) lo=$((16#${hex:8:8}))
  # (hi * 2^32 + lo) mod n without overflowing 64-bit signed shell arithmetic
  echo $(( ((hi % n) * (4294967296 % n) + lo) % n ))
}

tag() { printf '%s:{p%02d}' "$PREFIX" "$1"; }

# ---------------------------------------------------------------------- event ids
bits() {  # VALUE WIDTH: VALUE in binary, WIDTH digits
  local value=$1 width=$2 out="" i
  for ((i = width - 1; i >= 0; i--)); do out+=$(( (value >> i) & 1 )); done
  printf '%s' "$out"
}

hexbits() {  # HEX: its digits in binary, 4 per digit
  local hex=$1 out="" i
  for ((i = 0; i < ${#hex}; i++)); do out+=$(bits $((16#${hex:i:1})) 4); done
  printf '%s' "$out"
}

ulid() {  # MS RANDOM_HEX(68 bits) PARTITION: Crockford base32 of ms<<80 | random<<12 | p
  local all out="" i
  all="00$(bits "$1" 48)$(hexbits "$2")$(bits "$3" 12)"  # 130 bits: 26 x 5
  for ((i = 0; i < 130; i += 5)); do out+=${ALPHABET:$((2#${all:i:5})):1}; done
  printf '%s' "$out"
}

# --------------------------------------------------------------- MessagePack, hex
utf8hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }

str() {  # TEXT: a str, canonical (fixstr, str8, str16)
  local hex n
  hex=$(utf8hex "$1")
  n=$(( ${#hex} / 2 ))
  if ((n < 32)); then printf '%02x' $((0xa0 | n))
  elif ((n < 256)); then printf 'd9%02x' "$n"
  else printf 'da%04x' "$n"; fi
  printf '%s' "$hex"
}

uint() {  # N: the shortest unsigned int
  local n=$1
  if ((n < 128)); then printf '%02x' "$n"
  elif ((n < 256)); then printf 'cc%02x' "$n"
  elif ((n < 65536)); then printf 'cd%04x' "$n"
  elif ((n < 4294967296)); then printf 'ce%08x' "$n"
  else printf 'cf%016x' "$n"; fi
}

entry() {  # ID USER TS TITLE [KEY]: a notification.created, keys f i t v u ts d k
  local count=7
  [[ -n ${5:-} ]] && count=8
  printf '%02x' $((0x80 | count))
  str f; uint 1; str i; str "$1"; str t; str notification.created; str v; uint 1
  str u; str "$2"; str ts; uint "$3"
  str d; printf '86'
  str title; str "$4"; str body; str ""; str category; str general
  str data; printf '80'; str channels; printf '91'; str in_app; str recipients; printf '80'
  if [[ -n ${5:-} ]]; then str k; str "$5"; fi
}

raw() {  # HEX: a str the way Herald's producer writes script arguments (no str8)
  local n=$(( ${#1} / 2 ))
  if ((n < 32)); then printf '%02x' $((0xa0 | n))
  elif ((n < 65536)); then printf 'da%04x' "$n"
  else printf 'db%08x' "$n"; fi
  printf '%s' "$1"
}

tobytes() { printf "$(printf '%s' "$1" | sed 's/\(..\)/\\x\1/g')"; }

# -------------------------------------------------------------------- the script
script_text() {  # producer_append.lua with its --@include line replaced
  awk -v dir="$REPO/streams/lua" '
    /^--@include / { file = dir "/" $2 ".lua"; while ((getline line < file) > 0) print line
                     close(file); next }
    { print }' "$REPO/streams/lua/producer_append.lua"
}

cli() { "$CLI" -u "$URL" "$@"; }

publish() {  # USER TITLE [KEY]
  local user=$1 title=$2 key=${3:-} partitions span p ms random id hex work sha bucket
  partitions=$(cli HGET "$PREFIX:meta" partitions)
  [[ -n $partitions ]] || { echo "$PREFIX:meta has no partition count: is Herald set up?" >&2; exit 1; }
  span=$(cli HGET "$PREFIX:meta" dedupe_window_ms)
  span=${span:-86400000}
  p=$(partition "$user" "$partitions")
  ms=$(date +%s%3N)
  random=$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-17)  # 68 bits
  id=$(ulid "$ms" "$random" "$p")
  hex=$(entry "$id" "$user" "$ms" "$title" "$key")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  # ARGV[3]: [entry, id, key] as str (Lua's cmsgpack has no bin type)
  tobytes "93$(raw "$hex")$(raw "$(utf8hex "$id")")$(raw "$(utf8hex "$key")")" > "$work/argv3"
  script_text > "$work/script.lua"
  sha=$(cli -x SCRIPT LOAD < "$work/script.lua")
  bucket=$(( ms / span ))
  local root reply attempt
  root=$(tag "$p")
  for attempt in 1 2 3; do
    reply=$(cli -x EVALSHA "$sha" 5 "$root:log" "$root:idem:$span:$((bucket - 2))" \
      "$root:idem:$span:$((bucket - 1))" "$root:idem:$span:$bucket" \
      "$root:idem:$span:$((bucket + 1))" "$span" "$bucket" < "$work/argv3")
    if [[ $reply == BUCKET\ * ]]; then  # nothing written: again in the server's bucket
      bucket=${reply#BUCKET }; bucket=${bucket%% *}; continue
    fi
    if [[ $reply == NOSCRIPT* ]]; then sha=$(cli -x SCRIPT LOAD < "$work/script.lua"); continue; fi
    local lines
    mapfile -t lines <<<"$reply"
    if ((${#lines[@]} == 1)) && [[ ${lines[0]} =~ ^[0-9]+-[0-9]+$ ]]; then
      printf '{"id": "%s", "partition": %d, "position": "%s", "duplicate": false}\n' \
        "$id" "$p" "${lines[0]}"
    elif ((${#lines[@]} == 2)); then  # [first event id, first position]
      printf '{"id": "%s", "partition": %d, "position": "%s", "duplicate": true}\n' \
        "${lines[0]}" "$p" "${lines[1]}"
    else
      echo "unexpected reply: $reply" >&2; exit 1
    fi
    return 0
  done
  echo "the append script kept refusing the call" >&2
  exit 1
}

case ${1:-} in
  publish) shift; publish "$@" ;;
  partition) partition "$2" "$3" ;;
  id) ulid "$2" "$3" "$4"; echo ;;
  entry) shift; entry "$@"; echo ;;
  script) script_text | sha1sum | cut -d' ' -f1 ;;
  *) echo "usage: publish.sh publish USER TITLE [KEY] | partition | id | entry | script" >&2
     exit 2 ;;
esac
