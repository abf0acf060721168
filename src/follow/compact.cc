#include "follow/compact.h"

#include <chrono>
#include <memory>
#include <set>

#include "backup/layout.h"
#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::follow {
namespace {

bool Encrypted(const SegmentObject& s) { return s.parsed.ext.ends_with(".enc"); }
std::string Show(const std::string& name) { return backup::EscapeForTerminal(name); }

std::string Numbers(uint64_t a, uint64_t b) { return a == b ? std::to_string(a) : std::to_string(a) + ".." + std::to_string(b); }

class ChainCompactor {
 public:
  ChainCompactor(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                 const CompactOptions& o, CompactReport& r)
      : repo_(repo), chain_(chain), key_(key), o_(o), r_(r) {}

  void Run() {
    RemoveSuperseded();
    const size_t usable = chain_.usable_segments;
    const size_t limit = usable > o_.keep_last ? usable - o_.keep_last : 0;
    // The fine-grained clock: time() may lag a file's modification time by a tick.
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    auto eligible = [&](size_t k) {
      return k < limit && (o_.min_age.count() == 0 ||
                           now - chain_.segments[k].mtime_unix >= static_cast<int64_t>(o_.min_age.count()));
    };
    // A lower bound of a segment's plain records size before it is read: what an earlier
    // pass learned, else its stored size (compression only shrinks events).
    auto estimate = [&](size_t k) -> uint64_t {
      if (o_.known_sizes != nullptr) {
        if (auto it = o_.known_sizes->find(chain_.segments[k].name); it != o_.known_sizes->end()) return it->second;
      }
      return chain_.segments[k].stored_size;
    };
    for (size_t k = 0; k < limit; k++) {
      const SegmentObject& s = chain_.segments[k];
      if (!eligible(k)) {
        Flush();
        continue;
      }
      if (Stopping()) {
        Drop();
        return;
      }
      if (o_.known_sizes != nullptr) {
        if (auto it = o_.known_sizes->find(s.name); it != o_.known_sizes->end()) {
          if (!members_.empty() && builder_->size() + it->second > o_.target_bytes) Flush();
          const uint64_t next = eligible(k + 1) ? estimate(k + 1) : UINT64_MAX;
          if (members_.empty() && (it->second >= o_.target_bytes || next > o_.target_bytes - it->second)) {
            continue;  // too big to start a run: not read again
          }
        }
      }
      Take(s);
    }
    Flush();
  }

 private:
  bool Stopping() const { return o_.should_stop && o_.should_stop(); }
  void CheckLock() {
    if (o_.lock != nullptr) o_.lock->CheckHeld();
  }
  void Step(const std::string& s) {
    if (o_.on_step) o_.on_step(s);
  }
  std::string What(const SegmentObject& s) const { return repo_.Describe() + "/" + Show(s.name); }

  void Remove(const SegmentObject& s, const std::string& merged) {
    if (o_.dry_run) {
      r_.actions.push_back("would remove " + Show(s.name) + " (replaced by " + Show(merged) + ")");
      r_.removed++;
      return;
    }
    CheckLock();
    {
      CommitSection section;
      repo_.store().Remove(s.name);
    }
    r_.removed++;
    r_.actions.push_back("removed " + Show(s.name) + " (replaced by " + Show(merged) + ")");
    if (o_.known_sizes != nullptr) o_.known_sizes->erase(s.name);
    Step("removed " + s.name);
  }

  // What an earlier merge left: removed once the merged segment that replaces it reads
  // back whole.
  void RemoveSuperseded() {
    std::set<std::string> checked;
    for (auto it = chain_.superseded.rbegin(); it != chain_.superseded.rend(); ++it) {
      const SegmentObject* by = nullptr;
      for (size_t i = 0; i < chain_.usable_segments && by == nullptr; i++) {
        if (backup::SegmentCovers(chain_.segments[i].parsed, it->parsed)) by = &chain_.segments[i];
      }
      if (by == nullptr) {
        r_.notes.push_back("chain of " + chain_.base.id + ": " + Show(it->name) +
                           " is replaced by a merged segment after the chain's first problem: left alone");
        continue;
      }
      if (Stopping()) return;
      if (!checked.count(by->name)) {
        ReadSegment(repo_, *by, key_);
        r_.segments_read++;
        checked.insert(by->name);
      }
      Remove(*it, by->name);
    }
  }

  // Reads segment s and adds it to the run being built (starting one, or flushing the run
  // first when s would make it too big).
  void Take(const SegmentObject& s) {
    if (chain_.base.encryption != "none" && !Encrypted(s)) {
      throw Error(ErrorCode::kDataLoss, What(s) + ": a plaintext segment in the chain of an encrypted backup");
    }
    std::vector<Record> records;
    ReadSegmentResult res = ReadSegment(repo_, s, key_, [&](const Record& rec) { records.push_back(rec); });
    r_.segments_read++;
    const SegmentHeader& h = res.header;
    if (o_.known_sizes != nullptr) (*o_.known_sizes)[s.name] = h.records_size;
    if (!members_.empty()) {
      if (h.prev_sha256 != link_) {
        throw Error(ErrorCode::kDataLoss, What(s) + ": does not follow " + Show(members_.back()->name) +
                                              " (its prev_sha256 is not that segment's link): not merged");
      }
      if (builder_->size() + h.records_size > o_.target_bytes) Flush();
    }
    if (members_.empty()) {
      if (h.records_size >= o_.target_bytes || !h.end.empty()) return;  // alone, as it is
      builder_ = std::make_unique<SegmentBuilder>(h.chain, h.seq, h.first_revision - 1, h.prev_sha256);
    }
    for (const Record& rec : records) builder_->AddRecord(rec);
    members_.push_back(&s);
    link_ = res.link_sha256;
    end_ = h.end;
    seq_last_ = h.seq_last;
    if (!end_.empty()) Flush();  // the chain's last segment
  }

  void Drop() {
    builder_.reset();
    members_.clear();
    link_.clear();
    end_.clear();
  }

  // Writes the run as one merged segment (two segments or more), then removes them.
  void Flush() {
    if (members_.size() < 2 || Stopping()) {
      Drop();
      return;
    }
    const std::string plain = builder_->FinishMerged(seq_last_, link_, end_);
    const SegmentHeader h = builder_->header();
    DecodeSegment(AsBytes(plain), "merged segment " + std::to_string(h.seq) + ".." + std::to_string(h.seq_last));
    const std::vector<const SegmentObject*> members = members_;
    Drop();
    const std::string replaces = "replaces segments " + Numbers(h.seq, h.seq_last) + ", " +
                                 std::to_string(members.size()) + " objects, revisions " +
                                 std::to_string(h.first_revision) + ".." + std::to_string(h.last_revision);
    SegmentWriteOptions w;
    w.compression = o_.compression;
    w.compression_level = o_.compression_level;
    w.key = key_;
    std::string name;
    if (o_.dry_run) {
      auto ext = backup::SegmentExtension(pipeline::CompressionName(w.compression), w.key.has_value());
      name = backup::MergedSegmentObjectName(h.chain, h.seq, h.seq_last, h.first_revision, h.last_revision,
                                             ext.value_or(".evt"));
      r_.actions.push_back("would write " + Show(name) + " (" + replaces + ")");
      r_.merged_written++;
      r_.segments_replaced += members.size();
    } else {
      CheckLock();
      StoredSegment stored;
      {
        CommitSection section;
        stored = WriteSegment(repo_, h, plain, w);
      }
      name = stored.name;
      r_.merged_written++;
      r_.segments_replaced += members.size();
      r_.actions.push_back("wrote " + Show(name) + " (" + replaces + ")");
      if (o_.known_sizes != nullptr) (*o_.known_sizes)[name] = h.records_size;
      Step("wrote " + name);
    }
    // The highest number first: a kill leaves the merged object and a prefix of what it
    // replaces, all superseded.
    for (auto it = members.rbegin(); it != members.rend(); ++it) Remove(**it, name);
  }

  backup::Repository& repo_;
  const Chain& chain_;
  const std::optional<pipeline::KeySpec>& key_;
  const CompactOptions& o_;
  CompactReport& r_;
  // The run being built.
  std::unique_ptr<SegmentBuilder> builder_;
  std::vector<const SegmentObject*> members_;
  std::string link_, end_;
  uint64_t seq_last_ = 0;
};

void AddReport(CompactReport& into, CompactReport&& r) {
  into.merged_written += r.merged_written;
  into.segments_replaced += r.segments_replaced;
  into.removed += r.removed;
  into.segments_read += r.segments_read;
  for (auto& a : r.actions) into.actions.push_back(std::move(a));
  for (auto& n : r.notes) into.notes.push_back(std::move(n));
}

void CheckOptions(const CompactOptions& o) {
  if (o.target_bytes == 0 || o.target_bytes > kMaxSegmentBytes / 2) {
    throw Error(ErrorCode::kInvalidArgument, "compaction: the target size must be between 1 byte and " +
                                                 std::to_string(kMaxSegmentBytes / 2) + " bytes");
  }
  if (o.min_age.count() < 0) throw Error(ErrorCode::kInvalidArgument, "compaction: negative minimum age");
}

}  // namespace

CompactReport CompactChain(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                           const CompactOptions& options) {
  CheckOptions(options);
  CompactReport r;
  ChainCompactor(repo, chain, key, options, r).Run();
  return r;
}

void CompactRepository(backup::Repository& repo, const std::optional<pipeline::KeySpec>& key,
                       const CompactOptions& options, CompactReport* report) {
  CheckOptions(options);
  repo.RequireMarker("compact");
  std::unique_ptr<backup::RepositoryLock> lock;
  CompactOptions o = options;
  if (!o.dry_run) {
    lock = repo.Lock(backup::kCompactOperation, &report->notes);
    o.lock = lock.get();
  }
  ChainScan scan = ScanChains(repo);
  std::exception_ptr first;
  for (const Chain& c : scan.chains) {
    if (o.should_stop && o.should_stop()) break;
    CompactReport r;
    try {
      ChainCompactor(repo, c, key, o, r).Run();
    } catch (const Error& e) {
      r.notes.push_back("chain of " + c.base.id + " not compacted further: " + backup::EscapeForTerminal(e.what()));
      if (!first) first = std::current_exception();
      if (e.code() == ErrorCode::kLocked) {
        AddReport(*report, std::move(r));
        throw;
      }
    }
    AddReport(*report, std::move(r));
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace etcdsafe::follow
