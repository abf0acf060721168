#include "follow/chain.h"

#include <algorithm>
#include <map>
#include <optional>

#include "base/checksum.h"
#include "base/error.h"
#include "pipeline/encrypt.h"

namespace etcdsafe::follow {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

pipeline::Compression CompressionOfExt(std::string_view ext) {
  if (ext.find(".zst") != std::string_view::npos) return pipeline::Compression::kZstd;
  if (ext.find(".gz") != std::string_view::npos) return pipeline::Compression::kGzip;
  return pipeline::Compression::kNone;
}

std::string ChainId(const backup::ParsedName& p) { return p.stem + "-r" + std::to_string(p.revision); }

}  // namespace

ChainScan ScanChains(backup::Repository& repo) { return ScanChains(repo.ScanTop()); }

ChainScan ScanChains(const backup::Repository::Scan& scan) {
  std::map<std::string, const backup::Manifest*> bases;
  for (const auto& m : scan.backups) {
    if (m.Kind() == backup::BackupKind::kSnapshot) bases[m.id] = &m;
  }
  std::map<std::string, std::vector<SegmentObject>> by_chain;
  ChainScan out;
  for (const auto& o : scan.objects) {
    backup::ParsedName p = backup::ClassifyName(o.name);
    if (p.kind != backup::NameKind::kSegment) continue;
    SegmentObject s{o.name, p, o.size, o.mtime_unix};
    if (!bases.count(ChainId(p))) {
      out.orphans.push_back(std::move(s));
    } else {
      by_chain[ChainId(p)].push_back(std::move(s));
    }
  }
  for (auto& [id, segs] : by_chain) {
    Chain c;
    c.base = *bases[id];
    // Widest first at one number: a merged segment comes before what it replaces.
    std::sort(segs.begin(), segs.end(), [](const SegmentObject& a, const SegmentObject& b) {
      if (a.parsed.seq != b.parsed.seq) return a.parsed.seq < b.parsed.seq;
      if (a.parsed.seq_last != b.parsed.seq_last) return a.parsed.seq_last > b.parsed.seq_last;
      return a.name < b.name;
    });
    // Superseded objects (a merge being committed, or killed while it was): left out.
    std::vector<backup::ParsedName> names;
    for (const auto& s : segs) names.push_back(s.parsed);
    const std::vector<std::optional<size_t>> by = backup::SupersededSegments(names);
    std::vector<SegmentObject> kept;
    for (size_t i = 0; i < segs.size(); i++) (by[i] ? c.superseded : kept).push_back(std::move(segs[i]));
    segs = std::move(kept);
    c.usable_last_revision = ChainStart(c.base);
    int64_t expect_first = ChainStart(c.base) + 1;
    uint64_t expect_seq = 1;
    bool usable = true;
    for (size_t i = 0; i < segs.size(); i++) {
      const auto& p = segs[i].parsed;
      std::string problem;
      if (i > 0 && p.seq == segs[i - 1].parsed.seq && !segs[i].merged() && !segs[i - 1].merged()) {
        problem = "two segments numbered " + std::to_string(p.seq) + ": " + segs[i - 1].name + " and " + segs[i].name;
      } else if (i > 0 && p.seq <= segs[i - 1].parsed.seq_last) {
        problem = segs[i].name + " overlaps " + segs[i - 1].name;
      } else if (p.seq != expect_seq) {
        problem = "segment " + std::to_string(expect_seq) + " is missing (next is " + segs[i].name + ")";
      } else if (p.first_revision != expect_first) {
        problem = segs[i].name + " starts at revision " + std::to_string(p.first_revision) + ", not " +
                  std::to_string(expect_first);
      }
      if (!problem.empty()) {
        c.problems.push_back(backup::EscapeForTerminal(problem));
        usable = false;
      }
      if (usable) {
        c.usable_last_revision = p.last_revision;
        c.usable_segments = i + 1;
      }
      expect_seq = p.seq_last + 1;
      expect_first = p.last_revision + 1;
    }
    c.segments = std::move(segs);
    out.chains.push_back(std::move(c));
  }
  std::sort(out.chains.begin(), out.chains.end(), [](const Chain& a, const Chain& b) {
    return a.base.time_unix != b.base.time_unix ? a.base.time_unix < b.base.time_unix : a.base.id < b.base.id;
  });
  return out;
}

StoredSegment WriteSegment(backup::Repository& repo, const SegmentHeader& header, const std::string& plain,
                           const SegmentWriteOptions& options) {
  auto ext = backup::SegmentExtension(pipeline::CompressionName(options.compression), options.key.has_value());
  if (!ext) throw Error(ErrorCode::kInvalidArgument, "segment: unknown compression");
  StoredSegment out;
  out.name = backup::MergedSegmentObjectName(header.chain, header.seq, header.seq_last, header.first_revision,
                                             header.last_revision, *ext);
  StringSink stored;
  {
    std::unique_ptr<pipeline::EncryptSink> enc;
    Sink* tail = &stored;
    if (options.key) {
      enc = pipeline::NewEncryptSink(*options.key, stored);
      tail = enc.get();
    }
    pipeline::CompressOptions co;
    co.level = options.compression_level;
    co.zstd_workers = 0;
    co.zstd_long = false;
    // kNone is a pass-through stage: the same chain for every compression.
    std::unique_ptr<Sink> comp = pipeline::NewCompressSink(options.compression, co, *tail);
    comp->Write(AsBytes(plain));
    comp->Close();
  }
  out.stored_sha256 = HexBytes(Sha256Of(AsBytes(stored.str())));
  out.stored_size = stored.str().size();
  repo.store().Put(out.name, stored.str());
  return out;
}

ReadSegmentResult ReadSegment(backup::Repository& repo, const SegmentObject& seg,
                              const std::optional<pipeline::KeySpec>& key,
                              const std::function<void(const Record&)>& on_record) {
  const std::string what = repo.Describe() + "/" + backup::EscapeForTerminal(seg.name);
  const bool encrypted = EndsWith(seg.parsed.ext, ".enc");
  if (encrypted && !key) {
    throw Error(ErrorCode::kInvalidArgument,
                what + ": segment is encrypted: give --encryption-key-file (or --encryption-key-env)");
  }
  std::string stored = repo.store().Get(seg.name, kMaxStoredSegment);
  ReadSegmentResult out;
  out.stored_sha256 = HexBytes(Sha256Of(AsBytes(stored)));
  StringSource src(std::move(stored));
  std::unique_ptr<Source> dec, decomp;
  Source* tail = &src;
  if (encrypted) {
    dec = pipeline::NewDecryptSource(*key, *tail);
    tail = dec.get();
  }
  decomp = pipeline::NewDecompressSource(CompressionOfExt(seg.parsed.ext), *tail);
  tail = decomp.get();
  std::string plain;
  std::vector<uint8_t> buf(1 << 20);
  try {
    for (;;) {
      size_t n = tail->Read(buf.data(), buf.size());
      if (n == 0) break;
      if (plain.size() + n > kMaxSegmentBytes) {
        throw Error(ErrorCode::kDataLoss, "decodes to more than " + std::to_string(kMaxSegmentBytes) + " bytes");
      }
      plain.append(reinterpret_cast<const char*>(buf.data()), n);
    }
  } catch (const Error& e) {
    throw e.Wrap(what);
  }
  out.header = DecodeSegment(AsBytes(plain), what, on_record);
  out.plain_sha256 = HexBytes(Sha256Of(AsBytes(plain)));
  out.link_sha256 = out.header.merged() ? out.header.link_sha256 : out.plain_sha256;
  const auto& p = seg.parsed;
  if (out.header.chain != ChainId(p) || out.header.seq != p.seq || out.header.seq_last != p.seq_last ||
      out.header.first_revision != p.first_revision ||
      out.header.last_revision != p.last_revision) {
    throw Error(ErrorCode::kDataLoss, what + ": the segment's header (chain " +
                                          backup::EscapeForTerminal(out.header.chain) + ", number " +
                                          std::to_string(out.header.seq) +
                                          (out.header.merged() ? ".." + std::to_string(out.header.seq_last) : "") +
                                          ", revisions " +
                                          std::to_string(out.header.first_revision) + ".." +
                                          std::to_string(out.header.last_revision) + ") does not match its name");
  }
  return out;
}

ChainReadResult ReadChain(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                          int64_t up_to_revision, const std::function<void(const Record&)>& on_record,
                          const std::function<void(uint64_t)>& progress) {
  ChainReadResult r;
  r.last_revision = ChainStart(chain.base);
  r.last_link_sha256 = chain.base.stored_sha256;
  r.last_time_ms = chain.base.time_unix * 1000;
  const int64_t target = up_to_revision == 0 ? chain.usable_last_revision : up_to_revision;
  if (target > chain.usable_last_revision) {
    std::string why = chain.problems.empty() ? "" : " (" + chain.problems.front() + ")";
    throw Error(ErrorCode::kNotFound, "the chain of " + chain.base.id + " reaches revision " +
                                          std::to_string(chain.usable_last_revision) + ", not " +
                                          std::to_string(target) + why);
  }
  std::string prev_name = chain.base.id;
  const bool base_encrypted = chain.base.encryption != "none";
  for (size_t i = 0; i < chain.usable_segments; i++) {
    const SegmentObject& seg = chain.segments[i];
    if (up_to_revision != 0 && seg.parsed.first_revision > target) break;
    // Anyone can compute the link of segment 1 (the base's stored sha256 is public), so in
    // the chain of an encrypted base only an encrypted segment proves who wrote it.
    if (base_encrypted && !EndsWith(seg.parsed.ext, ".enc")) {
      throw Error(ErrorCode::kDataLoss, repo.Describe() + "/" + backup::EscapeForTerminal(seg.name) +
                                            ": a plaintext segment in the chain of an encrypted backup");
    }
    // Records are buffered until the link is checked: nothing of a segment that is not
    // the one the chain says comes next reaches the consumer.
    std::vector<Record> records;
    ReadSegmentResult s = ReadSegment(repo, seg, key, [&](const Record& rec) { records.push_back(rec); });
    if (s.header.prev_sha256 != r.last_link_sha256) {
      throw Error(ErrorCode::kDataLoss, repo.Describe() + "/" + backup::EscapeForTerminal(seg.name) +
                                            ": does not follow " + backup::EscapeForTerminal(prev_name) +
                                            " (its prev_sha256 is not that object's sha256): a segment of the chain "
                                            "was replaced, altered or removed");
    }
    for (const Record& rec : records) {
      if (rec.tag == 'R' && rec.rev.revision > target) break;
      if (rec.tag == 'H') r.hashes.push_back(rec.hash);
      if (on_record) on_record(rec);
      if (rec.tag == 'R') r.last_time_ms = rec.rev.time_ms;
      if (rec.tag == 'P' && rec.progress.revision <= target) r.last_time_ms = rec.progress.time_ms;
    }
    r.last_revision = std::min(target, s.header.last_revision);
    r.last_link_sha256 = s.link_sha256;
    r.end = s.header.end;
    r.segments++;
    prev_name = seg.name;
    if (progress) progress(r.segments);
  }
  if (r.last_revision < target) {
    throw Error(ErrorCode::kNotFound, "the chain of " + chain.base.id + " reaches revision " +
                                          std::to_string(r.last_revision) + ", not " + std::to_string(target));
  }
  return r;
}

}  // namespace etcdsafe::follow
