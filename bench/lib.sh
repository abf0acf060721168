# Shared set-up for the benchmarks (sourced by bench/run.sh and bench/save_backup.sh).
#   env: BENCH_MB (default 1024), RUNS (default 3), BENCH_DIR (default /tmp/etcdsafe-bench, reused)
# After sourcing: $here (repo), $etcdsafe, $dir (cwd), $mb, $runs, $ep, ${tls[@]} (mTLS flags),
# $pid (the etcd), measure LABEL CMD... (appends a line of timings to results.txt, see below),
# and an etcd with ~$mb MB of Kubernetes-shaped data (loaded once, cached in $dir).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
# CPU seconds (user+sys) the etcd server has used so far.
etcd_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat"; }
# measure label cmd... → appends "label seconds maxrss_kb user_s sys_s etcd_cpu_s load1" to results.txt
# (the tool's own CPU, the etcd server's CPU during the run, the 1-minute load average before it).
measure() {
  local label=$1 e0 e1 load; shift
  sync; load=$(cut -d' ' -f1 /proc/loadavg); e0=$(etcd_cpu)
  /usr/bin/time -f "%e %M %U %S" -o time.out "$@" >/dev/null 2>cmd.err || { cat cmd.err; exit 1; }
  e1=$(etcd_cpu)
  echo "$label $(cat time.out) $(awk -v a="$e0" -v b="$e1" 'BEGIN{printf "%.2f", b - a}') $load" >> results.txt
}
