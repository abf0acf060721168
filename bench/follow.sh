#!/bin/bash
# Continuous backup (issue 9): `etcdsafe backup --follow` recording a steady load of
# RATE puts/s of 1 KB values for SECONDS against a fresh local etcd; prints the write rate
# achieved, the RPO (acknowledgement -> segment stored) percentiles, and the recorder's
# peak RSS and CPU. Usage: bench/follow.sh [path/to/etcdsafe]   env: RATE (5000), SECONDS_ (30)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
etcdsafe=$(realpath "${1:-$here/build/etcdsafe}")
bench=$(dirname "$etcdsafe")/etcdsafe-follow-bench
dir=$(mktemp -d /tmp/etcdsafe-follow-bench.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
mapfile -t ports < <("$here/tools/free-port.py" 2)
ep="http://127.0.0.1:${ports[0]}"
etcd --name b --data-dir "$dir/etcd" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
  --listen-peer-urls "http://127.0.0.1:${ports[1]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[1]}" \
  --initial-cluster "b=http://127.0.0.1:${ports[1]}" --quota-backend-bytes $((8 << 30)) --log-level error \
  > "$dir/etcd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do ETCDCTL_API=3 etcdctl --endpoints "$ep" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
echo "== backup --follow under ${RATE:-5000} puts/s of 1 KB for ${SECONDS_:-30} s (etcd 3.4, this machine)"
"$bench" --etcdsafe "$etcdsafe" --endpoint "$ep" --repo "$dir/repo" --rate "${RATE:-5000}" --seconds "${SECONDS_:-30}"
echo "segments stored: $(ls "$dir/repo" | grep -c '\.seg-' || true), repository size: $(du -sh "$dir/repo" | cut -f1)"
