#!/usr/bin/env bash
# Starts N `weft node` processes on 127.0.0.1 in one open realm, each bootstrapping from two
# nodes started before it, lets them settle, then checks that a subscriber attached to one node
# receives publications made through another, and that a procedure served through one node is
# callable through another. Prints connections and sessions per node from their /metrics.
#
#   scripts/many-nodes.sh [WEFT] [N] [extra `weft node` flags...]
#   scripts/many-nodes.sh target/release/weft 100 --max-connections 8
set -euo pipefail
WEFT=${1:-target/release/weft}; N=${2:-100}; shift 2 || true
SETTLE=${SETTLE:-50}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] && cp -r "$DIR" "$KEEP"; rm -rf "$DIR"' EXIT
addrs=(); https=()
for i in $(seq 0 $((N - 1))); do
  boot=()
  if [ "$i" -gt 0 ]; then
    for _ in 1 2; do boot+=(--bootstrap "${addrs[$((RANDOM % i))]}"); done
  fi
  log=warn; [ "$i" = "${DEBUG_NODE:-none}" ] && log=weft_runtime=debug
  RUST_LOG=$log "$WEFT" node --listen 127.0.0.1:0 --realm big --http 127.0.0.1:0 "${boot[@]}" "$@" \
    > "$DIR/node$i.out" 2> "$DIR/node$i.err" &
  for _ in $(seq 200); do
    grep -q '^/ip4/' "$DIR/node$i.out" && grep -q 'http on' "$DIR/node$i.err" && break
    sleep 0.05
  done
  addrs+=("$(grep -m1 '^/ip4/' "$DIR/node$i.out")")
  https+=("$(grep -m1 -o 'http://[0-9.:]*' "$DIR/node$i.err")")
done
echo "$N nodes up; settling ${SETTLE}s"
sleep "$SETTLE"
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
max_conn=0; max_sess=0; forwarding=0
for h in "${https[@]}"; do
  c=$(metric "$h" weft_connected_peers); s=$(metric "$h" weft_sessions)
  f=$(metric "$h" weft_forwarding)
  c=${c%.*}; s=${s%.*}; f=${f%.*}
  [ "${c:-0}" -gt "$max_conn" ] && max_conn=${c:-0}
  [ "${s:-0}" -gt "$max_sess" ] && max_sess=${s:-0}
  forwarding=$((forwarding + ${f:-0}))
done
echo "max connected peers per node: $max_conn; max sessions per node: $max_sess; nodes forwarding: $forwarding"

SUB=${addrs[$((N / 2))]}; PUB=${addrs[$((N * 8 / 10))]}
SERVE=${addrs[$((N / 10))]}; CALL=${addrs[$((N * 9 / 10))]}
"$WEFT" sub --connect "$SUB" --realm big 'orders.*' --count 3 > "$DIR/sub.out" 2>&1 &
sub=$!
"$WEFT" serve --connect "$SERVE" --realm big calc.echo -- cat > "$DIR/serve.out" 2>&1 &
sleep 3
for k in 1 2 3; do
  "$WEFT" pub --connect "$PUB" --realm big orders.placed "{\"n\":$k}" > "$DIR/pub$k.out" 2>&1 ||
    { echo "pub $k failed:"; tail -2 "$DIR/pub$k.out"; }
  sleep 2
done
calls=0
for k in 1 2 3; do
  if "$WEFT" call --connect "$CALL" --realm big calc.echo '{"x":1}' > "$DIR/call$k.out" 2>&1; then
    calls=$((calls + 1))
  else
    echo "call $k failed: $(tail -1 "$DIR/call$k.out")"
  fi
done
sleep 3
kill "$sub" 2>/dev/null || true
received=$(grep -c '"n"' "$DIR/sub.out" || true)
echo "publications received: $received of 3; calls answered: $calls of 3"
[ "$received" -eq 3 ] || { echo "the subscriber said:"; tail -3 "$DIR/sub.out"; }
max_conn=0
forwarded=0
for h in "${https[@]}"; do
  c=$(metric "$h" weft_connected_peers); c=${c%.*}
  [ "${c:-0}" -gt "$max_conn" ] && max_conn=${c:-0}
  f=$(curl -s "$h/metrics" | awk '$1 ~ /^weft_forward_batches_total/ && $1 ~ /outcome="sent"/ { s += $2 } END { print s + 0 }')
  forwarded=$((forwarded + ${f%.*}))
done
echo "after: max connected peers per node: $max_conn; forwarded batches, all nodes: $forwarded"
