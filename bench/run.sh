#!/usr/bin/env bash
# etcdsafe vs etcdctl on the same ~1 GB Kubernetes-shaped etcd, in one run.
#   bench/run.sh [path/to/etcdsafe]     env: BENCH_MB (default 1024), RUNS (default 3),
#                                          BENCH_DIR (default /tmp/etcdsafe-bench, reused)
# Runs the two tools alternately on the same data and prints medians, peak RSS and ratios
# (etcdctl / etcdsafe for time: > 1 means etcdsafe is faster). Writes bench/RESULTS.md.
#   ONLY=agent: the agent section alone (prints its table, leaves bench/RESULTS.md as it is).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
rm -f results.txt
if [ "${ONLY:-}" != agent ]; then
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
rm -rf r-ctl r-safe

# The seeds' backup pipeline (etcdctl snapshot save, gzip -6, sha256sum) against
# `etcdsafe backup` with zstd and AES-256-GCM into a local repository.
head -c 32 /dev/urandom > bench.key && chmod 600 bench.key
seed_pipeline() {
  ETCDCTL_API=3 etcdctl "${tls[@]}" snapshot save seed.db >/dev/null 2>&1 &&
    gzip -6 -c seed.db > seed.db.gz && sha256sum seed.db.gz > seed.db.gz.sha256 && rm -f seed.db
}
for i in $(seq "$runs"); do
  rm -rf seed.db* repo
  measure pipeline_seed bash -c "$(declare -p tls); $(declare -f seed_pipeline); seed_pipeline"
  echo "seed_size $(stat -c %s seed.db.gz) 0" >> results.txt
  measure pipeline_etcdsafe "$etcdsafe" "${tls[@]}" backup --repo "file://$dir/repo" --encryption-key-file bench.key
  echo "etcdsafe_size $(stat -c %s repo/*.enc) 0" >> results.txt
done

# S3 upload of the same object: etcdsafe backup to s3rver vs aws s3 cp.
s3rver="$here/tools/node/node_modules/.bin/s3rver"
if [ -x "$s3rver" ]; then
  s3port=$("$here/tools/free-port.py")
  rm -rf s3data && mkdir s3data
  NODE_OPTIONS=--openssl-legacy-provider "$s3rver" --directory s3data --port "$s3port" --address 127.0.0.1 --silent >/dev/null 2>&1 &
  s3pid=$!
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1
  for _ in $(seq 50); do /usr/bin/aws --endpoint-url "http://127.0.0.1:$s3port" s3 mb s3://bench >/dev/null 2>&1 && break; sleep 0.2; done
  obj=$(ls repo/*.enc)
  for i in $(seq "$runs"); do
    measure s3_awscli /usr/bin/aws --endpoint-url "http://127.0.0.1:$s3port" s3 cp "$obj" "s3://bench/aws-$i.enc"
    measure s3_etcdsafe "$etcdsafe" "${tls[@]}" backup --repo "s3://bench/etcdsafe-$i" --s3-endpoint "http://127.0.0.1:$s3port" \
      --s3-path-style --encryption-key-file bench.key
  done
  kill $s3pid 2>/dev/null || true
fi
rm -rf seed.db* repo s3data

fi  # ONLY=agent

# The agent (issue 8): a backup run by `etcdsafe agent` vs the same `etcdsafe backup` by
# hand (time and peak RSS, alternating), then the idle agent's CPU over a minute and RSS.
agent_config() {  # repo_dir http_port schedule
  cat <<YAML
etcd: {endpoints: ["$ep"], cacert: $dir/ca.crt, cert: $dir/client.crt, key: $dir/client.key}
repositories: [{name: bench, url: "file://$1"}]
encryption: {key_file: $dir/bench.key}
jobs: {backup: {schedule: "$3"}}
http: {listen: "127.0.0.1:$2"}
state_dir: $1.state
log: {format: json}
YAML
}
agent_once() {  # runs the agent until its first backup is committed, then SIGTERM
  local repo=$dir/agent-repo port
  rm -rf "$repo" "$repo.state"; port=$("$here/tools/free-port.py")
  agent_config "$repo" "$port" "@daily" > agent.yaml
  /usr/bin/time -f "%e %M" -o agent-time.out "$etcdsafe" agent --config agent.yaml 2> agent.log &
  local apid=$!
  for _ in $(seq 6000); do grep -q '"backup.done"\|"backup.failed"' agent.log && break; sleep 0.05; done
  pkill -TERM -P $apid 2>/dev/null || true; wait $apid || true
  grep -q '"backup.done"' agent.log || { cat agent.log; exit 1; }
  local secs; secs=$(grep '"backup.done"' agent.log | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["duration_s"])')
  echo "agent_backup $secs $(cut -d' ' -f2 agent-time.out)" >> results.txt
}
for i in $(seq "$runs"); do
  rm -rf hand-repo
  # Wall time includes process start (~20 ms); the agent's is the job's own duration.
  measure hand_backup "$etcdsafe" "${tls[@]}" backup --repo "file://$dir/hand-repo" --encryption-key-file bench.key
  agent_once
done
# Idle: the repository has a fresh backup, so nothing runs; CPU ticks over 60 s, RSS.
port=$("$here/tools/free-port.py"); agent_config "$dir/agent-repo" "$port" "@daily" > agent.yaml
"$etcdsafe" agent --config agent.yaml 2> agent-idle.log & apid=$!
sleep 5
t0=$(awk '{print $14+$15}' /proc/$apid/stat); sleep 60; t1=$(awk '{print $14+$15}' /proc/$apid/stat)
rss=$(awk '/^VmRSS/{print $2}' /proc/$apid/status); anon=$(awk '/^RssAnon/{print $2}' /proc/$apid/status)
kill -TERM $apid; wait $apid || true
echo "agent_idle_cpu_ms $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) 0" >> results.txt
echo "agent_idle_rss $rss $anon" >> results.txt
rm -rf hand-repo agent-repo agent-repo.state

python3 - "$dir/results.txt" "$here/bench/RESULTS.md" "$mb" <<'PY'
import statistics, sys, collections, subprocess, datetime
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, secs, rss = line.split()[:3]
    rows[label].append((float(secs), int(rss)))
def med(label):
    v = rows[label]
    return statistics.median(s for s, _ in v), max(r for _, r in v) / 1024
out = [f"Measured {datetime.date.today()} on a 2-core Debian 12 machine, ~{sys.argv[3]} MB db, "
       f"{len(rows['save_etcdctl'])} runs per tool (status: {len(rows['status_etcdctl'])}), alternating; "
       "times are medians, RSS the peak over runs.", "",
       "| operation | etcdctl 3.4.23 | etcdsafe | speed-up (etcdctl/etcdsafe) | etcdctl peak RSS | etcdsafe peak RSS |",
       "|---|---|---|---|---|---|"]
for op in ["save", "status", "restore"] if rows.get("save_etcdctl") else []:
    ct, cr = med(f"{op}_etcdctl"); st, sr = med(f"{op}_etcdsafe")
    out.append(f"| {op} | {ct:.2f} s | {st:.2f} s | {ct/st:.2f}x | {cr:.0f} MiB | {sr:.0f} MiB |")
if rows.get("pipeline_seed"):
    pt, pr = med("pipeline_seed"); et, er = med("pipeline_etcdsafe")
    save_t, _ = med("save_etcdctl")
    seed_size = statistics.median(s for s, _ in rows["seed_size"]); our_size = statistics.median(s for s, _ in rows["etcdsafe_size"])
    out += ["", "Backup pipeline: the seeds' `etcdctl snapshot save` + `gzip -6` + `sha256sum` vs "
            "`etcdsafe backup` (zstd-1 with long matching + AES-256-GCM, status and integrity check, local repository).", "",
            "| pipeline | wall time | x etcdctl save alone | output size | peak RSS |", "|---|---|---|---|---|",
            f"| seed script | {pt:.2f} s | {pt/save_t:.2f}x | {seed_size/1e6:.0f} MB | {pr:.0f} MiB |",
            f"| etcdsafe backup | {et:.2f} s | {et/save_t:.2f}x | {our_size/1e6:.0f} MB ({our_size/seed_size:.2f}x gzip) | {er:.0f} MiB |"]
if rows.get("s3_awscli"):
    at, ar = med("s3_awscli"); bt, br = med("s3_etcdsafe")
    out += ["", "S3 upload to a local s3rver: `aws s3 cp` of the finished backup object vs a whole `etcdsafe backup` "
            "(snapshot + compress + encrypt + multipart upload).", "",
            "| upload | wall time | peak RSS |", "|---|---|---|",
            f"| aws s3 cp (object only) | {at:.2f} s | {ar:.0f} MiB |",
            f"| etcdsafe backup to s3:// | {bt:.2f} s | {br:.0f} MiB |"]
if rows.get("agent_backup"):
    ht, hr = med("hand_backup"); at, ar = med("agent_backup")
    cpu = rows["agent_idle_cpu_ms"][0][0]; rss_kb, anon_kb = rows["agent_idle_rss"][0]
    out += ["", "The agent: the same encrypted backup run by `etcdsafe agent` (job duration from its log) and by hand "
            "(`etcdsafe backup`, wall time); the idle agent over 60 s.", "",
            "| run | time | peak RSS |", "|---|---|---|",
            f"| etcdsafe backup (by hand) | {ht:.2f} s | {hr:.0f} MiB |",
            f"| etcdsafe agent (backup job) | {at:.2f} s ({at/ht:.2f}x) | {ar:.0f} MiB ({ar/hr:.2f}x) |",
            f"| idle agent, 60 s | {cpu:.0f} ms CPU | {rss_kb/1024:.1f} MiB RSS, of which {anon_kb/1024:.1f} MiB anonymous |"]
text = "\n".join(out) + "\n"
print(text)
if rows.get("pipeline_seed"):  # a whole run (not ONLY=agent)
    # The sections other scripts wrote ("## ...", after this script's part) stay.
    try:
        old = open(sys.argv[2]).read()
    except FileNotFoundError:
        old = ""
    cut = old.find("\n## ")
    rest = old[cut:] if cut >= 0 else ""
    open(sys.argv[2], "w").write("# Benchmark results (bench/run.sh)\n\n" + text + rest)
PY
