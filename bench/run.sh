#!/usr/bin/env bash
# etcdsafe vs etcdctl on the same ~1 GB Kubernetes-shaped etcd, in one run.
#   bench/run.sh [path/to/etcdsafe]     env: BENCH_MB (default 1024), RUNS (default 3),
#                                          BENCH_DIR (default /tmp/etcdsafe-bench, reused)
# Runs the two tools alternately on the same data and prints medians, peak RSS and ratios
# (etcdctl / etcdsafe for time: > 1 means etcdsafe is faster). Writes bench/RESULTS.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
etcdsafe=$(realpath "${1:-$here/build/etcdsafe}")
loader=$(dirname "$etcdsafe")/etcdsafe-load
mb=${BENCH_MB:-1024}
runs=${RUNS:-3}
dir=${BENCH_DIR:-/tmp/etcdsafe-bench}
mkdir -p "$dir"
cd "$dir"
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true' EXIT

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=bench-ca -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=etcd -keyout server.key -out server.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile san.ext -out server.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=root -keyout client.key -out client.csr 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out client.crt 2>/dev/null
fi
mapfile -t ports < <("$here/tools/free-port.py" 3)
ep="https://127.0.0.1:${ports[0]}"
start_etcd() {
  etcd --name bench --data-dir "$dir/source.etcd" --listen-client-urls "$ep,http://127.0.0.1:${ports[2]}" \
    --advertise-client-urls "$ep" --listen-peer-urls "http://127.0.0.1:${ports[1]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ports[1]}" --initial-cluster "bench=http://127.0.0.1:${ports[1]}" \
    --cert-file server.crt --key-file server.key --trusted-ca-file ca.crt --client-cert-auth \
    --quota-backend-bytes $((8 << 30)) --snapshot-count 1000000 --log-level error > etcd.log 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    ETCDCTL_API=3 etcdctl --endpoints "$ep" --cacert ca.crt --cert client.crt --key client.key endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd did not start"; tail etcd.log; exit 1
}
# The plain-text listener (ports[2]) is only for the loader; the tools under test use mTLS.
start_etcd
if [ ! -f "$dir/.loaded-$mb" ]; then
  echo "loading ~$mb MB of Kubernetes-shaped data (once; cached in $dir)"
  "$loader" --endpoint "http://127.0.0.1:${ports[2]}" --target-mb "$mb" --threads 4
  touch "$dir/.loaded-$mb"
fi

tls=(--endpoints "$ep" --cacert ca.crt --cert client.crt --key client.key)
measure() {  # label cmd... → appends "label seconds maxrss_kb" to results.txt
  local label=$1; shift
  sync; /usr/bin/time -f "%e %M" -o time.out "$@" >/dev/null 2>cmd.err || { cat cmd.err; exit 1; }
  echo "$label $(cat time.out)" >> results.txt
}
rm -f results.txt
for i in $(seq "$runs"); do
  rm -f ctl.db safe.db
  measure save_etcdctl env ETCDCTL_API=3 etcdctl "${tls[@]}" snapshot save ctl.db
  measure save_etcdsafe "$etcdsafe" "${tls[@]}" snapshot save safe.db
done
ls -l ctl.db safe.db
for i in $(seq $((runs + 2))); do
  measure status_etcdctl env ETCDCTL_API=3 etcdctl snapshot status ctl.db
  measure status_etcdsafe "$etcdsafe" snapshot status ctl.db
done
for i in $(seq "$runs"); do
  rm -rf r-ctl r-safe
  measure restore_etcdctl env ETCDCTL_API=3 etcdctl snapshot restore ctl.db --data-dir r-ctl
  measure restore_etcdsafe "$etcdsafe" snapshot restore ctl.db --data-dir r-safe
done
echo "etcdctl status: $(ETCDCTL_API=3 etcdctl snapshot status ctl.db -w table 2>/dev/null | sed -n 4p)"
echo "etcdsafe status: $("$etcdsafe" snapshot status ctl.db -w table 2>/dev/null | sed -n 4p)"
rm -rf r-ctl r-safe ctl.db safe.db

python3 - "$dir/results.txt" "$here/bench/RESULTS.md" "$mb" <<'PY'
import statistics, sys, collections, subprocess, datetime
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, secs, rss = line.split()
    rows[label].append((float(secs), int(rss)))
def med(label):
    v = rows[label]
    return statistics.median(s for s, _ in v), max(r for _, r in v) / 1024
out = [f"Measured {datetime.date.today()} on a 2-core Debian 12 machine, ~{sys.argv[3]} MB db, "
       f"{len(rows['save_etcdctl'])} runs per tool (status: {len(rows['status_etcdctl'])}), alternating; "
       "times are medians, RSS the peak over runs.", "",
       "| operation | etcdctl 3.4.23 | etcdsafe | speed-up (etcdctl/etcdsafe) | etcdctl peak RSS | etcdsafe peak RSS |",
       "|---|---|---|---|---|---|"]
for op in ["save", "status", "restore"]:
    ct, cr = med(f"{op}_etcdctl"); st, sr = med(f"{op}_etcdsafe")
    out.append(f"| {op} | {ct:.2f} s | {st:.2f} s | {ct/st:.2f}x | {cr:.0f} MiB | {sr:.0f} MiB |")
text = "\n".join(out) + "\n"
print(text)
open(sys.argv[2], "w").write("# Benchmark results (bench/run.sh)\n\n" + text)
PY
