#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: a throwaway etcd 3.4 with TLS client-cert auth
# and Kubernetes-shaped data → etcdsafe snapshot save (sha256-verified) → status → verify
# → restore into a new data dir → a second etcd started on the restored dir → the data
# is compared key by key. Everything runs on 127.0.0.1 on free ports and is removed at
# the end (DEMO_KEEP=1 keeps the work dir).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
etcdsafe=$(realpath "${1:-$here/build/etcdsafe}")
work=$(mktemp -d /tmp/etcdsafe-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "${DEMO_KEEP:-0}" = 1 ] && echo "work dir kept: $work" || rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mapfile -t ports < <("$here/tools/free-port.py" 9)

step "TLS certificates (CA, server for 127.0.0.1, client CN=root)"
cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=demo-ca -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=etcd -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out server.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=root -keyout client.key -out client.csr 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out client.crt 2>/dev/null
ls -1 ./*.crt

start_etcd() {  # name data_dir client_port peer_port
  local ep="https://127.0.0.1:$3" peer="http://127.0.0.1:$4"
  etcd --name "$1" --data-dir "$2" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" --initial-cluster "$1=$peer" \
    --cert-file server.crt --key-file server.key --trusted-ca-file ca.crt --client-cert-auth \
    --log-level error > "$work/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$ep" --cacert ca.crt --cert client.crt --key client.key \
      endpoint health >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "etcd $1 did not become healthy:"; tail -5 "$work/$1.log"; exit 1
}
ctl() { ETCDCTL_API=3 etcdctl --endpoints "https://127.0.0.1:$1" --cacert ca.crt --cert client.crt --key client.key "${@:2}"; }

step "Throwaway etcd $(etcd --version | head -1 | awk '{print $3}') on https://127.0.0.1:${ports[0]} (client-cert auth)"
start_etcd source "$work/source.etcd" "${ports[0]}" "${ports[1]}"

step "Sample Kubernetes-shaped data: namespaces, pods, configmaps, secrets, leases; overwrites and deletes"
python3 - "$work" <<'PY'
import json, random, sys
random.seed(7)
ops = []
ops.append(("/registry/ranges/serviceips", json.dumps({"kind": "RangeAllocation", "range": "10.96.0.0/12"})))
ops.append(("/registry/ranges/servicenodeports", json.dumps({"kind": "RangeAllocation", "range": "30000-32767"})))
for ns in ["default", "kube-system", "monitoring", "payments", "web"]:
    ops.append((f"/registry/namespaces/{ns}", json.dumps({"kind": "Namespace", "metadata": {"name": ns}})))
    for i in range(60):
        pod = {"kind": "Pod", "metadata": {"name": f"app-{i}", "namespace": ns},
               "spec": {"containers": [{"image": f"registry.local/app:{i}", "env": "x" * random.randint(500, 6000)}]}}
        ops.append((f"/registry/pods/{ns}/app-{i}", json.dumps(pod)))
    for i in range(20):
        ops.append((f"/registry/configmaps/{ns}/cm-{i}", json.dumps({"kind": "ConfigMap", "data": {"k": "v" * random.randint(100, 3000)}})))
        ops.append((f"/registry/secrets/{ns}/secret-{i}", json.dumps({"kind": "Secret", "data": {"token": "s" * 64}})))
# etcdctl txn input: compares, a blank line, success requests, a blank line, failure requests.
for b in range(0, len(ops), 100):
    with open(f"{sys.argv[1]}/txn.{b // 100:03d}", "w") as f:
        f.write("\n")
        for k, v in ops[b:b + 100]:
            f.write(f"put {k} {json.dumps(v)}\n")
        f.write("\n\n")
PY
for f in "$work"/txn.*; do ctl "${ports[0]}" txn < "$f" >/dev/null; done
for i in $(seq 0 9); do ctl "${ports[0]}" put "/registry/pods/default/app-$i" '{"kind":"Pod","status":"updated"}' >/dev/null; done
for i in $(seq 50 59); do ctl "${ports[0]}" del "/registry/pods/web/app-$i" >/dev/null; done
echo "keys: $(ctl "${ports[0]}" get /registry --prefix --keys-only -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"

step "etcdsafe snapshot save (mTLS, sha256 recomputed and checked against the server's trailer)"
"$etcdsafe" snapshot save "$work/backup.db" --endpoints "https://127.0.0.1:${ports[0]}" \
  --cacert ca.crt --cert client.crt --key client.key
ls -l "$work/backup.db"

step "etcdsafe snapshot status -w table (native bbolt reader; etcdctl's numbers for comparison)"
"$etcdsafe" snapshot status "$work/backup.db" -w table
echo "etcdctl says: $(ETCDCTL_API=3 etcdctl snapshot status "$work/backup.db" 2>/dev/null)"

step "etcdsafe snapshot verify"
"$etcdsafe" snapshot verify "$work/backup.db"

step "etcdsafe snapshot restore into a new data dir (native: no etcdctl, no Go)"
"$etcdsafe" snapshot restore "$work/backup.db" --data-dir "$work/restored.etcd" --name restored \
  --initial-cluster "restored=http://127.0.0.1:${ports[3]}" --initial-advertise-peer-urls "http://127.0.0.1:${ports[3]}" \
  --initial-cluster-token demo-restore
find "$work/restored.etcd" -printf '%M %10s %p\n' | sed "s|$work/||"

dump() {  # every key, value and mod revision served by the etcd on port $1
  ctl "$1" get /registry --prefix -w json |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps([(k["key"],k["value"],k["mod_revision"]) for k in d.get("kvs",[])]))'
}
compare() {  # port label
  dump "$1" > "$work/$2.json"
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/source.json")
  if cmp -s "$work/source.json" "$work/$2.json"; then
    echo "OK: all $n keys, values and revisions identical on the $2 etcd"
  else
    echo "MISMATCH between source and $2 data"; exit 1
  fi
}
dump "${ports[0]}" > "$work/source.json"

step "etcd started on the restored data dir, data compared with the source"
start_etcd restored "$work/restored.etcd" "${ports[2]}" "${ports[3]}"
compare "${ports[2]}" restored
ctl "${ports[2]}" endpoint status -w table

step "etcdsafe backup: health check, snapshot, sha256 + integrity check, zstd, AES-256-GCM, two repositories"
openssl rand -hex 32 > "$work/backup.key"; chmod 600 "$work/backup.key"
"$etcdsafe" backup --repo "file://$work/repo-a" --repo "file://$work/repo-b" --encryption-key-file "$work/backup.key" \
  --endpoints "https://127.0.0.1:${ports[0]}" --cacert ca.crt --cert client.crt --key client.key
"$etcdsafe" backups list --repo "file://$work/repo-a" -w table
(cd "$work/repo-a" && ls -l && sha256sum -c ./*.sha256)

step "etcdsafe backups verify (re-reads, decrypts, decompresses, checks every hash and the db itself)"
"$etcdsafe" backups verify --repo "file://$work/repo-b" --encryption-key-file "$work/backup.key"

step "etcdsafe restore --repo ... --backup latest, then etcd on it"
"$etcdsafe" restore --repo "file://$work/repo-b" --backup latest --encryption-key-file "$work/backup.key" \
  --data-dir "$work/from-repo.etcd" --name from-repo --initial-cluster "from-repo=http://127.0.0.1:${ports[5]}" \
  --initial-advertise-peer-urls "http://127.0.0.1:${ports[5]}" --bump-revision 1000 --mark-compacted
start_etcd from-repo "$work/from-repo.etcd" "${ports[4]}" "${ports[5]}"
compare "${ports[4]}" from-repo
echo "revision on the source: $(ctl "${ports[0]}" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])'), after --bump-revision 1000: $(ctl "${ports[4]}" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')"

tls=(--endpoints "https://127.0.0.1:${ports[0]}" --cacert ca.crt --cert client.crt --key client.key)
step "etcdsafe endpoint status / member list (etcdctl 3.4's commands and output)"
"$etcdsafe" endpoint status -w table "${tls[@]}"
"$etcdsafe" member list -w table "${tls[@]}"

step "etcdsafe get --from-snapshot: read a backup without restoring it (etcdctl get's output)"
"$etcdsafe" get --from-snapshot "$work/backup.db" /registry/namespaces --prefix --keys-only

step "etcdsafe backups verify --drill: restore the newest backup into a throwaway etcd on loopback and check it"
"$etcdsafe" backups verify --repo "file://$work/repo-a" --encryption-key-file "$work/backup.key" --drill \
  --max-age 1h --report "$work/drill.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("report:", "ok" if d["ok"] else "FAILED", "-", ", ".join(c["name"] for c in d["checks"]))' "$work/drill.json"

step "etcdsafe prune: only etcdsafe's own objects, planned and checked before anything is removed"
sleep 1
"$etcdsafe" backup --repo "file://$work/repo-a" --encryption-key-file "$work/backup.key" "${tls[@]}" >/dev/null
echo "a user's file in the repository" > "$work/repo-a/etcd-before-upgrade.db"
"$etcdsafe" prune --repo "file://$work/repo-a" --keep-last 1 --dry-run
"$etcdsafe" prune --repo "file://$work/repo-a" --keep-last 1
ls "$work/repo-a"

step "etcdsafe backup --follow: every change recorded (RPO ~1 s); then a restore to the moment before a mistake"
"$etcdsafe" backup --follow --repo "file://$work/repo-pitr" --encryption-key-file "$work/backup.key" "${tls[@]}" \
  --hash-every 500ms 2> "$work/follow.log" &
follow_pid=$!; pids+=($follow_pid)
for _ in $(seq 100); do ls "$work/repo-pitr" 2>/dev/null | grep -q 'manifest.json$' && break; sleep 0.1; done
ctl "${ports[0]}" put /registry/configmaps/default/settings '{"kind":"ConfigMap","data":{"mode":"safe"}}' >/dev/null
good=$(ctl "${ports[0]}" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
echo "revision $good: configmaps in default: $(ctl "${ports[0]}" get /registry/configmaps/default/ --prefix --keys-only | grep -c . )"
sleep 1
echo "the mistake: every configmap of namespace default deleted ($(ctl "${ports[0]}" del /registry/configmaps/default/ --prefix) keys)"
sleep 1.5
kill -TERM "$follow_pid"; wait "$follow_pid"
cut -c1-160 "$work/follow.log"
"$etcdsafe" backups list --repo "file://$work/repo-pitr" -w table
"$etcdsafe" restore --repo "file://$work/repo-pitr" --encryption-key-file "$work/backup.key" --to-revision "$good" \
  --data-dir "$work/pitr.etcd" --name pitr --initial-cluster "pitr=http://127.0.0.1:${ports[8]}" \
  --initial-advertise-peer-urls "http://127.0.0.1:${ports[8]}"
start_etcd pitr "$work/pitr.etcd" "${ports[7]}" "${ports[8]}"
echo "configmaps in default: $(ctl "${ports[0]}" get /registry/configmaps/default/ --prefix --keys-only | grep -c . || true) on the source now, $(ctl "${ports[7]}" get /registry/configmaps/default/ --prefix --keys-only | grep -c .) on the etcd restored to revision $good"

step "etcdsafe agent: scheduled backups with retention and drills; /metrics (checked by promtool), /readyz"
cat > "$work/agent.yaml" <<YAML
timezone: Europe/Berlin
etcd: {endpoints: ["https://127.0.0.1:${ports[0]}"], cacert: $work/ca.crt, cert: $work/client.crt, key: $work/client.key}
repositories: [{name: demo, url: "file://$work/repo-agent"}]
encryption: {key_file: $work/backup.key}
jobs:
  backup: {schedule: "@every 2s", retention: {keep_last: 2}}
  drill: {schedule: "@every 4s", max_age: 1h}
http: {listen: "127.0.0.1:${ports[6]}"}
state_dir: $work/agent-state
log: {format: text}
YAML
"$etcdsafe" agent --config "$work/agent.yaml" --check-config
"$etcdsafe" agent --config "$work/agent.yaml" 2> "$work/agent.log" &
agent_pid=$!; pids+=($agent_pid)
sleep 7
fetch() { python3 -c 'import sys,urllib.request as u
try: r=u.urlopen(sys.argv[1]); print(r.read().decode(), end="")
except u.HTTPError as e: print(e.code, e.read().decode(), end="")' "http://127.0.0.1:${ports[6]}$1"; }
fetch /metrics > "$work/metrics.txt"
grep -E '^etcdsafe_(backup_last_success_timestamp_seconds|backup_db_bytes|backup_revision|repository_backups|retention_deleted_total|drill_last_result|etcd_up)' "$work/metrics.txt"
promtool check metrics < "$work/metrics.txt" && echo "promtool check metrics: ok"
echo "readyz: $(fetch /readyz)"
kill -TERM "$agent_pid"; wait "$agent_pid"
cut -c1-170 "$work/agent.log"
"$etcdsafe" backups list --repo "file://$work/repo-agent" -w table
printf '\n\033[1mDemo complete: snapshot save/status/verify/restore, backup/list/verify/restore, cluster commands, offline get, a restore drill, a safe prune, continuous backup with a point-in-time restore and the agent, all checked against a real etcd.\033[0m\n'
