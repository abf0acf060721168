#!/usr/bin/env bash
# Point-in-time restore (issue 9, "Numbers"): replaying N recorded events OFFLINE
# (`etcdsafe restore --repo R --to-latest`: base + segments written straight into bbolt,
# then the usual member/WAL/snap files) against applying the same events through a real
# etcd's Put/Txn API, revision by revision in order (what an embedded-etcd replay does),
# in the same run on the same machine.
#
#   bench/pitr_replay.sh [path/to/etcdsafe]
#   env: EVENTS (default 1000000), VALUE_SIZE (1024), KEYS (100000),
#        APPLY_EVENTS (default: EVENTS; the etcd path at ~1-2k events/s on 2 cores takes
#        long, a smaller sample gives its rate), BENCH_DIR (default /tmp/etcdsafe-pitr-bench, wiped)
# Prints a table (and appends it to $BENCH_DIR/results.txt). Needs etcd and etcdctl on PATH.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
etcdsafe=$(realpath "${1:-$here/build/etcdsafe}")
helper=$(dirname "$etcdsafe")/etcdsafe-pitr-bench
events=${EVENTS:-1000000}
value_size=${VALUE_SIZE:-1024}
keys=${KEYS:-100000}
apply_events=${APPLY_EVENTS:-$events}
dir=${BENCH_DIR:-/tmp/etcdsafe-pitr-bench}
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

start_etcd() {  # name data-dir client-port peer-port
  etcd --name "$1" --data-dir "$2" --listen-client-urls "http://127.0.0.1:$3" --advertise-client-urls "http://127.0.0.1:$3" \
    --listen-peer-urls "http://127.0.0.1:$4" --initial-advertise-peer-urls "http://127.0.0.1:$4" \
    --initial-cluster "$1=http://127.0.0.1:$4" --quota-backend-bytes $((8 << 30)) --snapshot-count 1000000 \
    --log-level error > "$dir/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 600); do
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$3" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd $1 did not start"; tail "$dir/$1.log"; exit 1
}
hashkv() {  # port revision
  ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$1" endpoint hashkv --rev "$2" -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["HashKV"]["hash"])'
}
seconds() { python3 -c "import time; print(f'{time.time():.3f}')"; }

mapfile -t ports < <("$here/tools/free-port.py" 6)
# The source: a small base (a few keys), backed up into the repository.
start_etcd source "$dir/source.etcd" "${ports[0]}" "${ports[1]}"
for i in $(seq 10); do ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${ports[0]}" put "/seed/$i" "v$i" >/dev/null; done
"$etcdsafe" backup --repo "file://$dir/repo" --endpoints "http://127.0.0.1:${ports[0]}" > backup.out
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

# The events, as the recorder stores them (8 MiB zstd segments of incompressible values).
t0=$(seconds)
"$helper" gen --repo "file://$dir/repo" --events "$events" --value-size "$value_size" --keys "$keys" | tee gen.out
t1=$(seconds)
base_id=$(awk '{print $NF}' gen.out)
stored=$(du -sb "$dir/repo" | cut -f1)

# 1. Offline replay: restore --to-latest (download, verify, replay, HashKV if recorded, WAL, commit).
sync
/usr/bin/time -f "%e %M" -o replay.time "$etcdsafe" restore --repo "file://$dir/repo" --to-latest \
  --data-dir "$dir/replayed.etcd" --initial-cluster "replayed=http://127.0.0.1:${ports[3]}" --name replayed \
  --initial-advertise-peer-urls "http://127.0.0.1:${ports[3]}" > replay.out
read -r replay_s replay_kb < replay.time
cat replay.out

# 2. Through etcd: the base restored, started, and every revision applied with Put/Txn.
"$etcdsafe" restore --repo "file://$dir/repo" --backup "$base_id" --data-dir "$dir/applied.etcd" --name applied \
  --initial-cluster "applied=http://127.0.0.1:${ports[5]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[5]}" > /dev/null
start_etcd applied "$dir/applied.etcd" "${ports[4]}" "${ports[5]}"
"$helper" apply --repo "file://$dir/repo" --endpoint "http://127.0.0.1:${ports[4]}" --max-events "$apply_events" | tee apply.out
apply_n=$(awk '{print $2}' apply.out)
apply_s=$(awk '{print $7}' apply.out)
last_rev=$(ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:${ports[4]}" endpoint status -w json |
  python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')

# Same result? (only when every event was applied): HashKV of both etcds at the last revision.
same="not compared (APPLY_EVENTS < EVENTS)"
if [ "$apply_n" -ge "$events" ]; then
  start_etcd replayed "$dir/replayed.etcd" "${ports[2]}" "${ports[3]}"
  a=$(hashkv "${ports[2]}" "$last_rev"); b=$(hashkv "${ports[4]}" "$last_rev")
  same=$([ "$a" = "$b" ] && echo "yes, HashKV $a at revision $last_rev" || echo "NO: $a vs $b")
fi

python3 - "$events" "$replay_s" "$replay_kb" "$apply_n" "$apply_s" "$stored" "$value_size" "$same" <<'EOF' | tee -a results.txt
import sys
events, replay_s, replay_kb, apply_n, apply_s, stored, vs, same = sys.argv[1:]
events, replay_s, apply_n, apply_s = int(events), float(replay_s), int(apply_n), float(apply_s)
r_rate = events / replay_s
a_rate = apply_n / apply_s
print(f"\npoint-in-time restore of {events:,} events ({vs}-byte values; {int(stored)/2**20:.0f} MiB stored)")
print(f"| path | events | seconds | events/s |")
print(f"|---|---:|---:|---:|")
print(f"| offline replay (restore --to-latest, end to end; peak RSS {int(replay_kb)/1024:.0f} MiB) | {events:,} | {replay_s:.1f} | {r_rate:,.0f} |")
print(f"| etcd Put/Txn API, in order | {apply_n:,} | {apply_s:.1f} | {a_rate:,.0f} |")
if apply_n < events:
    print(f"| etcd Put/Txn API, {events:,} events at that rate (extrapolated) | {events:,} | {events / a_rate:.0f} | |")
print(f"\noffline replay is {r_rate / a_rate:.1f}x faster; same result: {same}")
EOF
