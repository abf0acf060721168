#!/usr/bin/env bash
# `etcdctl snapshot save` vs `etcdsafe snapshot save` vs `etcdsafe backup` (zstd + AES-256-GCM,
# status and integrity check, local repository), alternating on the same etcd as bench/run.sh.
#   bench/save_backup.sh [path/to/etcdsafe]    env: BENCH_MB, RUNS, BENCH_DIR (see lib.sh)
# Prints every run (wall s, peak RSS, the tool's CPU, etcd's CPU, load average before it), then
# medians and ratios to etcdctl's save. Does not touch bench/RESULTS.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ -f bench.key ] || { head -c 32 /dev/urandom > bench.key && chmod 600 bench.key; }
rm -f results.txt
# One unmeasured save first: the db is in the page cache for every measured run.
ETCDCTL_API=3 etcdctl "${tls[@]}" snapshot save warm.db >/dev/null 2>&1 && rm -f warm.db
for i in $(seq "$runs"); do
  rm -rf ctl.db safe.db repo
  measure save_etcdctl env ETCDCTL_API=3 etcdctl "${tls[@]}" snapshot save ctl.db
  measure save_etcdsafe "$etcdsafe" "${tls[@]}" snapshot save safe.db
  measure backup_etcdsafe "$etcdsafe" "${tls[@]}" backup --repo "file://$dir/repo" --encryption-key-file bench.key
  echo "backup_size $(stat -c %s repo/*.enc) 0" >> results.txt
done
db_size=$(stat -c %s ctl.db)
rm -rf ctl.db safe.db repo
python3 - "$dir/results.txt" "$db_size" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
print(f"{'run':16} {'wall s':>7} {'RSS MiB':>8} {'user s':>7} {'sys s':>6} {'etcd s':>7} {'load1':>6}")
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]].append(f[1:])
    if len(f) == 7:
        print(f"{f[0]:16} {float(f[1]):7.2f} {int(f[2]) / 1024:8.0f} {float(f[3]):7.2f} {float(f[4]):6.2f} {float(f[5]):7.2f} {f[6]:>6}")
med = lambda label, i: statistics.median(float(r[i]) for r in rows[label])
ctl = med("save_etcdctl", 0)
print(f"\ndb {int(sys.argv[2]) / 1e6:.0f} MB, {len(rows['save_etcdctl'])} runs each; medians:")
for label in ["save_etcdctl", "save_etcdsafe", "backup_etcdsafe"]:
    t = med(label, 0)
    rss = max(int(r[1]) for r in rows[label]) / 1024
    print(f"  {label:16} {t:6.2f} s  {t / ctl:5.2f}x etcdctl save  peak RSS {rss:4.0f} MiB  "
          f"CPU {med(label, 2) + med(label, 3):5.2f} s  etcd CPU {med(label, 4):5.2f} s")
print(f"  backup object {statistics.median(float(r[0]) for r in rows['backup_size']) / 1e6:.0f} MB")
PY
