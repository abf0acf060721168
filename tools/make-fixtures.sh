#!/usr/bin/env bash
# Regenerates tests/testdata/*.db with a real etcd 3.4 server and etcdctl (Debian packages).
# The fixtures are small real snapshots; tests compare our numbers with etcdctl's on them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/tests/testdata"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mapfile -t ports < <("$here/tools/free-port.py" 2)
cport=${ports[0]} pport=${ports[1]}
ep="http://127.0.0.1:$cport"
etcd --name fx --data-dir "$work/d" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "fx=http://127.0.0.1:$pport" --log-level error >"$work/etcd.log" 2>&1 &
pid=$!
export ETCDCTL_API=3
for _ in $(seq 100); do etcdctl --endpoints "$ep" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
e() { etcdctl --endpoints "$ep" "$@" >/dev/null; }
# small.db: a handful of Kubernetes-shaped keys, an overwrite, a delete and a lease.
e put /registry/namespaces/default '{"kind":"Namespace","metadata":{"name":"default"}}'
e put /registry/namespaces/kube-system '{"kind":"Namespace","metadata":{"name":"kube-system"}}'
e put /registry/configmaps/default/cm1 "v1"
e put /registry/configmaps/default/cm1 "v2"
e put /registry/secrets/default/s1 "secret-value"
e del /registry/secrets/default/s1
lease=$(etcdctl --endpoints "$ep" lease grant 600 | awk '{print $2}')
e put --lease="$lease" /registry/leases/kube-node-lease/node1 "lease"
etcdctl --endpoints "$ep" snapshot save "$out/small.db" >/dev/null 2>&1
# medium.db: enough keys for multi-level branch pages and overflow values.
for i in $(seq 1 1500); do etcdctl --endpoints "$ep" put "/registry/pods/ns$((i % 7))/pod-$i" "$(head -c $(( (i % 13) * 97 + 10 )) /dev/zero | tr '\0' x)" >/dev/null; done
e put /registry/big/obj "$(head -c 30000 /dev/zero | tr '\0' y)"
for i in $(seq 1 200); do e del "/registry/pods/ns$((i % 7))/pod-$i"; done
etcdctl --endpoints "$ep" snapshot save "$out/medium.db" >/dev/null 2>&1
for f in small medium; do etcdctl snapshot status "$out/$f.db" -w json > "$out/$f.status.json"; done
echo "fixtures written to $out"
