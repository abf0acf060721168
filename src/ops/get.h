// `etcdsafe get`: etcdctl 3.4's `get` (KEY [RANGE_END] --prefix --from-key --keys-only
// --print-value-only --limit --rev, -w simple|json) over a live endpoint, and the same
// range read from a snapshot file with no etcd running (`--from-snapshot FILE`): the
// answer an etcd restored from that file would give.
//
// Contract:
//  * ParseGet validates like etcdctl, with its messages (Error kInvalidArgument, exit 128):
//    "get command needs one argument as key and an optional argument as range_end",
//    "`--prefix` and `--from-key` cannot be set at the same time, choose one",
//    "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
//    "print-value-only is only for `--write-out=simple`"; -w table/fields/protobuf are
//    kUnsupported (exit 4). Arguments beyond RANGE_END are ignored, as etcdctl does. The
//    range follows clientv3: --prefix "" and --from-key "" read every key.
//  * Requests etcd rejects ("etcdserver: key is not provided", "etcdserver: mvcc: required
//    revision has been compacted", "... is a future revision") are Error(kInvalidArgument)
//    with etcd's text, starting "etcdserver: " (IsRejected); the CLI exits 1 for them, as
//    etcdctl does.
//  * FormatGet prints exactly what etcdctl prints: simple = key line (unless
//    --print-value-only) and value line per kv, raw bytes; json = Go's json.Marshal of the
//    RangeResponse (omitempty fields, []byte as padded base64), one line.
//  * GetFromSnapshot's header: cluster_id and member_id as `snapshot restore` with the
//    given flags (etcdfmt/membership.h) would create them; revision = the restored store's
//    current revision; raft_term = 2, what a single restored member answers after its
//    first election (a restored multi-member cluster may have held more elections).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "client/etcd_client.h"
#include "pipeline/keys.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::ops {

struct GetFlags {
  std::vector<std::string> args;  // KEY [RANGE_END]
  bool prefix = false;
  bool from_key = false;
  bool keys_only = false;
  bool print_value_only = false;
  int64_t limit = 0;
  int64_t rev = 0;
  std::string write_out = "simple";
};

struct GetRequest {
  std::string key;
  std::string range_end;
  int64_t limit = 0;
  int64_t revision = 0;
  bool keys_only = false;
  bool print_value_only = false;
  std::string write_out = "simple";
};

// Validates the flags and resolves the key range (see the contract above).
GetRequest ParseGet(const GetFlags& flags);

// etcd's ResponseHeader.
struct Header {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  int64_t revision = 0;
  uint64_t raft_term = 0;
};

struct GetResponse {
  Header header;
  std::vector<KeyValue> kvs;
  bool more = false;
  int64_t count = 0;
};

// "etcdserver: ..." errors: the request reached the store and was refused (exit 1).
bool IsRejected(const Error& e);

GetResponse GetLive(client::EtcdClient& client, const GetRequest& req);

// The flags `snapshot restore` would be given; they decide the IDs in the header.
struct RestoreIdentity {
  std::string name = "default";
  std::string initial_cluster = "default=http://localhost:2380";
  std::string initial_cluster_token = "etcd-cluster";
  std::string initial_advertise_peer_urls = "http://localhost:2380";
};

// The raft term a freshly restored single member answers with (its first election).
inline constexpr uint64_t kRestoredRaftTerm = 2;

// Header for a store restored with `id` (invalid flags: kInvalidArgument, etcdctl's text).
Header RestoredHeader(const RestoreIdentity& id, int64_t revision);

// etcdctl's output, written piece by piece to `write` (see the contract). The header is
// held back until the first kv or End, so nothing is written for a read that fails first.
class GetPrinter {
 public:
  using Write = std::function<void(std::string_view)>;
  GetPrinter(const GetRequest& req, Write write) : req_(req), write_(std::move(write)) {}
  void Begin(const Header& header) { header_ = header; }
  void Kv(const KeyValue& kv);
  void End(bool more, int64_t count);

 private:
  void Start();
  const GetRequest& req_;
  Write write_;
  Header header_;
  bool started_ = false;
  size_t kvs_ = 0;
  std::string buf_;
};

// Streams the answer from the snapshot to `printer` (Begin, Kv..., End); the kvs are
// never all in memory. The request is checked first, like etcd's checkRangeRequest.
void GetFromSnapshot(SnapshotKv& kv, const GetRequest& req, const Header& header, GetPrinter& printer);
// The same from a repository backup (`--repo R --backup ID|latest`): the backup read
// pipeline (download, decrypt, decompress, sha256, size, revision, keys and hash checked
// against the manifest: backup/repo_ops.h RestoreFromRepository) restores it into a
// scratch directory under $TMPDIR (default /tmp; it needs room for the db), whose db is
// then read as above; the directory is removed on return, on failure and on an
// interrupt. Repository errors as for `restore --repo`; notes go to *notes.
void GetFromRepository(backup::Repository& repo, const std::string& id_or_latest,
                       const std::optional<pipeline::KeySpec>& key, const RestoreIdentity& id, const GetRequest& req,
                       GetPrinter& printer, std::vector<std::string>* notes);
// Collecting form (tests).
GetResponse GetFromSnapshot(SnapshotKv& kv, const GetRequest& req, const Header& header);

// etcdctl's output for `resp` (see the contract).
std::string FormatGet(const GetResponse& resp, const GetRequest& req);

// Go's base64.StdEncoding.
std::string Base64(std::string_view bytes);

}  // namespace etcdsafe::ops
