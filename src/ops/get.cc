#include "ops/get.h"

#include "base/error.h"
#include "etcdfmt/membership.h"

namespace etcdsafe::ops {

namespace {

// clientv3.GetPrefixRangeEnd: the key with its last byte below 0xff incremented and
// everything after it dropped; "\0" (every key) when all bytes are 0xff.
std::string PrefixEnd(const std::string& key) {
  std::string end = key;
  for (size_t i = end.size(); i-- > 0;) {
    if (static_cast<uint8_t>(end[i]) < 0xff) {
      end[i] = static_cast<char>(static_cast<uint8_t>(end[i]) + 1);
      end.resize(i + 1);
      return end;
    }
  }
  return std::string(1, '\0');
}

void AppendJsonKv(std::string* out, const KeyValue& kv) {
  out->push_back('{');
  bool first = true;
  auto field = [&](const char* name) {
    if (!first) out->push_back(',');
    first = false;
    out->append("\"").append(name).append("\":");
  };
  if (!kv.key.empty()) {
    field("key");
    out->append("\"").append(Base64(kv.key)).append("\"");
  }
  if (kv.create_revision != 0) {
    field("create_revision");
    out->append(std::to_string(kv.create_revision));
  }
  if (kv.mod_revision != 0) {
    field("mod_revision");
    out->append(std::to_string(kv.mod_revision));
  }
  if (kv.version != 0) {
    field("version");
    out->append(std::to_string(kv.version));
  }
  if (!kv.value.empty()) {
    field("value");
    out->append("\"").append(Base64(kv.value)).append("\"");
  }
  if (kv.lease != 0) {
    field("lease");
    out->append(std::to_string(kv.lease));
  }
  out->push_back('}');
}

}  // namespace

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t{static_cast<uint8_t>(in[i])} << 16) | (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

GetRequest ParseGet(const GetFlags& f) {
  if (f.write_out != "simple" && f.write_out != "json") {
    if (f.write_out == "table" || f.write_out == "fields" || f.write_out == "protobuf") {
      throw Error(ErrorCode::kUnsupported,
                  f.write_out == "table" ? "table not supported as output format"
                                         : f.write_out + " output is not supported by etcdsafe get (use simple or json)");
    }
    throw Error(ErrorCode::kUnsupported, "unsupported output format");
  }
  if (f.args.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "get command needs one argument as key and an optional argument as range_end");
  }
  if (f.prefix && f.from_key) {
    throw Error(ErrorCode::kInvalidArgument, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
  }
  GetRequest r;
  r.key = f.args[0];
  if (f.args.size() > 1) {
    if (f.prefix || f.from_key) {
      throw Error(ErrorCode::kInvalidArgument,
                  "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
    }
    r.range_end = f.args[1];
  }
  if (f.print_value_only && f.write_out != "simple") {
    throw Error(ErrorCode::kInvalidArgument, "print-value-only is only for `--write-out=simple`");
  }
  if (f.prefix) {
    if (r.key.empty()) {
      r.key = std::string(1, '\0');
      r.range_end = std::string(1, '\0');
    } else {
      r.range_end = PrefixEnd(r.key);
    }
  }
  if (f.from_key) {
    if (r.key.empty()) r.key = std::string(1, '\0');
    r.range_end = std::string(1, '\0');
  }
  r.limit = f.limit;
  r.revision = f.rev;
  r.keys_only = f.keys_only;
  r.print_value_only = f.print_value_only;
  r.write_out = f.write_out;
  return r;
}

bool IsRejected(const Error& e) {
  return e.code() == ErrorCode::kInvalidArgument && std::string_view(e.what()).starts_with("etcdserver: ");
}

GetResponse GetLive(client::EtcdClient& client, const GetRequest& req) {
  client::EtcdClient::RangeResult r = client.Range(req.key, req.range_end, req.limit, req.revision, req.keys_only);
  GetResponse out;
  out.header = Header{r.header.cluster_id, r.header.member_id, r.header.revision, r.header.raft_term};
  out.kvs = std::move(r.kvs);
  out.more = r.more;
  out.count = r.count;
  return out;
}

Header RestoredHeader(const RestoreIdentity& id, int64_t revision) {
  etcdfmt::RestoreCluster c = etcdfmt::BuildRestoreCluster(id.name, id.initial_cluster, id.initial_cluster_token,
                                                           id.initial_advertise_peer_urls);
  return Header{c.cluster_id, c.local_id, revision, kRestoredRaftTerm};
}

namespace {

KvRange ToKvRange(const GetRequest& req) {
  // etcd's own check (etcdserver/api/v3rpc checkRangeRequest) before the store sees it.
  if (req.key.empty()) throw Error(ErrorCode::kInvalidArgument, "etcdserver: key is not provided");
  KvRange range;
  range.key = req.key;
  range.range_end = req.range_end;
  range.limit = req.limit;
  range.revision = req.revision;
  range.keys_only = req.keys_only;
  return range;
}

}  // namespace

void GetFromSnapshot(SnapshotKv& kv, const GetRequest& req, const Header& header, GetPrinter& printer) {
  const KvRange range = ToKvRange(req);
  Header h = header;
  h.revision = kv.current_revision();
  printer.Begin(h);
  KvRangeResult r = kv.Range(range, [&](const KeyValue& one) { printer.Kv(one); });
  printer.End(r.more, r.count);
}

GetResponse GetFromSnapshot(SnapshotKv& kv, const GetRequest& req, const Header& header) {
  KvRangeResult r = kv.Range(ToKvRange(req));
  GetResponse out;
  out.header = header;
  out.header.revision = r.revision;
  out.kvs = std::move(r.kvs);
  out.more = r.more;
  out.count = r.count;
  return out;
}

void GetPrinter::Start() {
  if (started_) return;
  started_ = true;
  if (req_.write_out == "simple") return;
  // json.Marshal(*pb.RangeResponse): header, kvs, more, count, each omitempty.
  const Header& h = header_;
  buf_.append("{\"header\":{");
  bool first = true;
  auto hfield = [&](const char* name, const std::string& v) {
    if (!first) buf_.push_back(',');
    first = false;
    buf_.append("\"").append(name).append("\":").append(v);
  };
  if (h.cluster_id != 0) hfield("cluster_id", std::to_string(h.cluster_id));
  if (h.member_id != 0) hfield("member_id", std::to_string(h.member_id));
  if (h.revision != 0) hfield("revision", std::to_string(h.revision));
  if (h.raft_term != 0) hfield("raft_term", std::to_string(h.raft_term));
  buf_.push_back('}');
}

void GetPrinter::Kv(const KeyValue& kv) {
  Start();
  if (req_.write_out == "simple") {
    if (!req_.print_value_only) buf_.append(kv.key).push_back('\n');
    buf_.append(kv.value).push_back('\n');
  } else {
    buf_.append(kvs_ == 0 ? ",\"kvs\":[" : ",");
    AppendJsonKv(&buf_, kv);
  }
  kvs_++;
  if (buf_.size() >= (64 << 10)) {
    write_(buf_);
    buf_.clear();
  }
}

void GetPrinter::End(bool more, int64_t count) {
  Start();
  if (req_.write_out != "simple") {
    if (kvs_ > 0) buf_.push_back(']');
    if (more) buf_.append(",\"more\":true");
    if (count != 0) buf_.append(",\"count\":").append(std::to_string(count));
    buf_.append("}\n");
  }
  if (!buf_.empty()) write_(buf_);
  buf_.clear();
}

std::string FormatGet(const GetResponse& resp, const GetRequest& req) {
  std::string out;
  GetPrinter p(req, [&](std::string_view s) { out.append(s); });
  p.Begin(resp.header);
  for (const KeyValue& kv : resp.kvs) p.Kv(kv);
  p.End(resp.more, resp.count);
  return out;
}

}  // namespace etcdsafe::ops
