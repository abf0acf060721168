#!/usr/bin/env bash
# `inspect inventory` and `inspect diff` (issue 11: bounded memory, at most 2x the time of
# `snapshot status` on the same file) on snapshots of the bench etcd of bench/lib.sh.
#   bench/inspect.sh [path/to/etcdsafe]   env: BENCH_MB, RUNS (see lib.sh), BENCH_DIR (default
#   /tmp/etcdsafe-bench-inspect: a copy of /tmp/etcdsafe-bench made on first use, since this
#   script writes to the etcd), FRESH=1 to take the two snapshots again.
# Snapshot A: the etcd as loaded. Then history: 3000 objects of the etcd are read back and
# 1800 of them updated 3 times (generation + 1 each time), 600 deleted, 300 deleted and
# re-created with a new uid, 600 new ones added, through `etcdctl txn` (100 ops each).
# Snapshot B: after. Measured, alternating, RUNS times: `snapshot status A`, `inspect
# inventory A` (and with --check-values: every JSON value parsed), `snapshot status B`,
# `inspect inventory B` (the file with history), `inspect
# diff A B`; medians, peak RSS (/usr/bin/time %M), ratios vs status (diff: vs status of B,
# and vs status A + status B, since it reads two files). Appends (or replaces) its section
# in bench/RESULTS.md.
set -euo pipefail
mb=${BENCH_MB:-1024}
if [ -z "${BENCH_DIR:-}" ]; then
  export BENCH_DIR=/tmp/etcdsafe-bench-inspect
  if [ ! -f "$BENCH_DIR/.loaded-$mb" ] && [ -f "/tmp/etcdsafe-bench/.loaded-$mb" ] &&
     ! pgrep -f "data-dir /tmp/etcdsafe-bench/source.etcd" >/dev/null; then
    echo "copying the loaded bench etcd /tmp/etcdsafe-bench to $BENCH_DIR (once)"
    mkdir -p "$BENCH_DIR" && cp -a /tmp/etcdsafe-bench/. "$BENCH_DIR/"
  fi
fi
source "$(dirname "$0")/lib.sh"
export ETCDCTL_API=3

if [ "${FRESH:-0}" = 1 ] || [ ! -f inspect-a.db ] || [ ! -f inspect-b.db ]; then
  rm -f inspect-a.db inspect-b.db
  "$etcdsafe" "${tls[@]}" snapshot save inspect-a.db >/dev/null
  # The churn: values read back (etcdctl get -w json), edited in Python, written by txns.
  etcdctl "${tls[@]}" get /registry/pods/ --prefix -w json --limit 3300 > churn-src.json
  rm -rf churn && mkdir churn
  python3 - churn-src.json <<'PY'
import base64, json, random, sys, uuid
def parses(kv):  # the loader writes a few values that are not JSON ("containers":])
    try:
        return isinstance(json.loads(base64.b64decode(kv["value"])), dict)
    except ValueError:
        return False
kvs = [kv for kv in json.load(open(sys.argv[1]))["kvs"] if parses(kv)]
rng = random.Random(11)
rng.shuffle(kvs)
def obj(kv):
    return base64.b64decode(kv["key"]).decode(), json.loads(base64.b64decode(kv["value"]))
ops = []  # one line per etcd request; "--" separates transactions
def put(k, o):
    ops.append("put %s '%s'" % (k, json.dumps(o, separators=(",", ":"))))
changed, removed, recreated = kvs[:1800], kvs[1800:2400], kvs[2400:2700]
for rnd in range(3):
    for kv in changed:
        k, o = obj(kv)
        o["metadata"]["generation"] = o["metadata"].get("generation", 1) + rnd + 1
        o.setdefault("status", {})["phase"] = "Round%d" % rnd
        put(k, o)
    ops.append("--")
for kv in removed + recreated:
    ops.append("del %s" % obj(kv)[0])
ops.append("--")
for kv in recreated:
    k, o = obj(kv)
    o["metadata"]["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
    put(k, o)
for i in range(600):
    k, o = obj(kvs[i])
    o["metadata"]["namespace"] = "bench-added"
    o["metadata"]["uid"] = str(uuid.UUID(int=rng.getrandbits(128)))
    put("/registry/configmaps/bench-added/cm-%d" % i, o)
# A key may appear once per transaction: batches of 100 within each "--" group, one file
# per transaction in etcdctl txn's format (compares, blank, requests, blank, failure requests, blank).
batch, files = [], 0
def flush():
    global files
    if batch:
        files += 1
        with open("churn/%04d.txt" % files, "w") as f:
            f.write("\n" + "\n".join(batch) + "\n\n\n")
    batch.clear()
for line in ops:
    if line == "--":
        flush()
        continue
    batch.append(line)
    if len(batch) == 100:
        flush()
flush()
PY
  for f in churn/*.txt; do etcdctl "${tls[@]}" txn < "$f" >/dev/null; done
  echo "churn: $(ls churn | wc -l) transactions"
  "$etcdsafe" "${tls[@]}" snapshot save inspect-b.db >/dev/null
  rm -rf churn-src.json churn
fi
ls -l inspect-a.db inspect-b.db
kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""  # etcd idle off the machine

rm -f inspect-results.txt
timed() {  # label cmd... → "label seconds maxrss_kb user_s sys_s load1"
  local label=$1 load; shift
  load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %M %U %S" -o time.out "$@" >/dev/null 2>cmd.err || { cat cmd.err; exit 1; }
  echo "$label $(cat time.out) $load" >> inspect-results.txt
}
cat inspect-a.db inspect-b.db > /dev/null  # page cache: every tool reads warm files
for i in $(seq "$runs"); do
  timed status_a "$etcdsafe" snapshot status inspect-a.db
  timed inventory_a "$etcdsafe" inspect inventory inspect-a.db -w json
  timed inventory_a_checked "$etcdsafe" inspect inventory --check-values inspect-a.db -w json
  timed status_b "$etcdsafe" snapshot status inspect-b.db
  timed inventory_b "$etcdsafe" inspect inventory inspect-b.db -w json
  timed diff "$etcdsafe" inspect diff inspect-a.db inspect-b.db -w json
done
"$etcdsafe" inspect diff inspect-a.db inspect-b.db > diff.out
echo "diff summary: $(grep -m1 '^A revision' diff.out)"; grep -A1 '^KEYS' diff.out | tail -1

python3 - "$dir/inspect-results.txt" "$here/bench/RESULTS.md" inspect-a.db inspect-b.db "$dir/diff.out" <<'PY'
import collections, datetime, os, re, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    rows[f[0]].append((float(f[1]), int(f[2]), float(f[5])))
def med(l): return statistics.median(s for s, _, _ in rows[l])
def rss(l): return max(r for _, r, _ in rows[l]) / 1024
def rng(l): return f"{min(s for s, _, _ in rows[l]):.2f}–{max(s for s, _, _ in rows[l]):.2f}"
loads = [ld for v in rows.values() for _, _, ld in v]
size = lambda p: os.path.getsize(p) / 1e6
summary = open(sys.argv[5]).read()
m = re.search(r"^A revision.*$", summary, re.M)
objs = re.search(r"^objects\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", summary, re.M)
out = ["", "## Inspect inventory and diff (bench/inspect.sh)", "",
       f"Measured {datetime.date.today()}, {len(rows['diff'])} runs, alternating; medians (range), RSS the peak "
       f"over runs; 1-minute load average before the runs {min(loads):.2f}–{max(loads):.2f} (2 shared cores). "
       f"A = {size(sys.argv[3]):.0f} MB snapshot of the bench etcd, B = {size(sys.argv[4]):.0f} MB after 1800 "
       "objects were updated 3 times, 600 deleted, 300 deleted and re-created, 600 added (B has history: "
       "superseded revisions and tombstones).", "",
       "| command | wall time | x status of the same file | peak RSS |", "|---|---|---|---|"]
for label, name, base in [("status_a", "snapshot status A", "status_a"), ("inventory_a", "inspect inventory A", "status_a"),
                          ("inventory_a_checked", "inspect inventory --check-values A (every JSON value parsed)", "status_a"),
                          ("status_b", "snapshot status B", "status_b"), ("inventory_b", "inspect inventory B (history)", "status_b"),
                          ("diff", "inspect diff A B", "status_b")]:
    x = f"{med(label) / med(base):.2f}x"
    if label == "diff":
        x += f" (status of B); {med(label) / (med('status_a') + med('status_b')):.2f}x status A + status B"
    out.append(f"| {name} | {med(label):.2f} s ({rng(label)}) | {x} | {rss(label):.0f} MiB |")
if m:
    out.append("")
    out.append(f"diff: {m.group(0)}" + (f"; objects added {objs.group(1)}, removed {objs.group(2)}, changed "
                                         f"{objs.group(3)}, recreated {objs.group(4)}." if objs else "."))
text = "\n".join(out) + "\n"
print(text)
res = open(sys.argv[2]).read() if os.path.exists(sys.argv[2]) else ""
res = re.sub(r"\n## Inspect inventory and diff \(bench/inspect.sh\)\n.*?(?=\n## |\Z)", "", res, flags=re.S)
open(sys.argv[2], "w").write(res.rstrip("\n") + "\n" + text)
PY
