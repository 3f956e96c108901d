#!/usr/bin/env bash
# Seeds jute/fuzz/corpus/<target>/ from the golden vectors captured from Apache ZooKeeper
# (jute/tests/data/{client,quorum}/*.hex). Lines starting with '#' are comments; the others are
# `DIR CONN HEX` (client: one whole frame, length prefix included) or `SENDER HEX` (quorum).
#
#   frame          every client-to-server frame, as it is on the wire
#   request        opcode (i32) ++ body of every request after the handshake, and opcode ++ body
#                  of the reply to it; opcode ++ body of the client requests a learner forwards
#   connect        the first frame each way of every connection whose handshake was captured
#   multi          the bodies of multi / multiRead requests and of their replies
#   quorum_packet  every quorum packet, the txn inside every PROPOSAL, every election
#                  notification (without its length prefix) and InitialMessage
#
# Each seed is named by the SHA-1 of its content (as libFuzzer names corpus files), so running
# this again adds nothing twice. Needs only awk, xxd and sha1sum.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data="$here/../tests/data"
corpus="$here/corpus"
targets=(frame request connect multi quorum_packet)
for t in "${targets[@]}"; do mkdir -p "$corpus/$t"; done

# awk prints "TARGET HEX" for every seed.
extract() {
    awk '
    function hexnum(h,    i, n) {
        n = 0
        h = tolower(h)
        for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
        return n
    }
    function seed(target, hex) { if (length(hex) > 0) print target, hex }
    FNR == 1 {
        split("", connecting); split("", seen); split("", pending)
        learner = FILENAME ~ /\/learner-[^\/]*$/
        after_snap = 0
    }
    /^#/ {
        # "#   C2S A: ConnectRequest(...)": connection A starts with a handshake.
        if ($2 == "C2S" && $4 ~ /^ConnectRequest/) { c = $3; sub(/:$/, "", c); connecting[c] = 1 }
        next
    }
    NF == 3 {
        dir = $1; conn = $2; hex = tolower($3)
        if (dir == "C2S") seed("frame", hex)
        if (connecting[conn] && !((dir, conn) in seen)) {
            seen[dir, conn] = 1
            seed("connect", substr(hex, 9))
            next
        }
        xid = substr(hex, 9, 8)
        if (dir == "C2S") {
            type = substr(hex, 17, 8)
            seed("request", substr(hex, 17))
            pending[conn, xid] = type
            if (type == "0000000e" || type == "00000016") seed("multi", substr(hex, 25))
        } else if ((conn, xid) in pending && length(hex) > 40) {
            type = pending[conn, xid]
            seed("request", type substr(hex, 41))
            if (type == "0000000e" || type == "00000016") seed("multi", substr(hex, 41))
        }
        next
    }
    NF == 2 {
        hex = tolower($2)
        if (!learner) {
            # Election: the InitialMessage has no length prefix, notifications have one.
            if (substr(hex, 1, 16) == "ffffffffffff0000") seed("quorum_packet", hex)
            else seed("quorum_packet", substr(hex, 9))
            next
        }
        seed("quorum_packet", hex)
        if (after_snap) { after_snap = 0; next }   # the raw snapshot stream after a SNAP
        type = hexnum(substr(hex, 1, 8))
        after_snap = (type == 15)
        len = substr(hex, 25, 8)
        if (len == "ffffffff") next
        payload = substr(hex, 33, 2 * hexnum(len))
        if (type == 2 || type == 8) seed("quorum_packet", payload)          # PROPOSAL, INFORM: a txn
        if (type == 1) seed("request", substr(payload, 25))                 # REQUEST: session, cxid, type, body
    }
    ' "$data"/client/*.hex "$data"/quorum/*.hex
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
added=0
while read -r target hex; do
    printf '%s' "$hex" | xxd -r -p > "$tmp"
    name=$(sha1sum < "$tmp" | cut -c1-40)
    if [ ! -e "$corpus/$target/$name" ]; then
        cp "$tmp" "$corpus/$target/$name"
        added=$((added + 1))
    fi
done < <(extract)

echo "seed-corpus: $added new seeds"
for t in "${targets[@]}"; do
    printf '  %-14s %4d files\n' "$t" "$(find "$corpus/$t" -type f | wc -l)"
done
