#include "follow/verify.h"

#include "base/error.h"

namespace etcdsafe::follow {
namespace {

bool Encrypted(const SegmentObject& s) { return s.parsed.ext.ends_with(".enc"); }

int64_t TimeOf(const Record& r) {
  switch (r.tag) {
    case 'R': return r.rev.time_ms;
    case 'L':
    case 'X': return r.lease.time_ms;
    case 'H': return r.hash.time_ms;
    case 'P': return r.progress.time_ms;
    default: return 0;
  }
}

ChainVerifyOutcome VerifyOne(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                             const std::function<void(uint64_t)>& progress, uint64_t* read_total) {
  ChainVerifyOutcome o;
  o.base_id = chain.base.id;
  o.segments = chain.segments.size();
  o.first_revision = ChainStart(chain.base) + 1;
  o.last_revision = chain.last_revision();
  o.checked_last_revision = ChainStart(chain.base);
  const std::string names_problem = chain.problems.empty() ? "" : chain.problems.front();
  bool any_encrypted = false;
  for (size_t i = 0; i < chain.usable_segments; i++) {
    const SegmentObject& s = chain.segments[i];
    any_encrypted = any_encrypted || Encrypted(s);
    // Links are plain sha256s, which anyone who can read a segment (and anyone at all,
    // for segment 1: the base's stored_sha256) can compute: only encryption
    // (authenticated, under the key) proves who wrote a segment. A plaintext segment in
    // the chain of an encrypted backup is refused, however well it links.
    if (chain.base.encryption != "none" && !Encrypted(s)) {
      o.problem = backup::EscapeForTerminal(s.name) +
                  " is not encrypted but its base backup is: refusing it (a plaintext segment proves nothing about "
                  "who wrote it)";
      return o;
    }
  }
  if (any_encrypted && !key) {
    if (!names_problem.empty()) {
      o.problem = names_problem;
      return o;
    }
    o.state = ChainVerifyOutcome::State::kKeyRequired;
    o.problem = "encrypted: " + std::to_string(o.segments) +
                " segments checked by their names only; give the key to check every link and record";
    return o;
  }
  try {
    ChainReadResult r = ReadChain(
        repo, chain, key, 0,
        [&](const Record& rec) {
          int64_t t = TimeOf(rec);
          if (t <= 0) return;
          if (o.first_time_ms == 0) o.first_time_ms = t;
          o.last_time_ms = t;
        },
        [&](uint64_t done) {
          o.segments_read = done;
          o.checked_last_revision = chain.segments[done - 1].parsed.last_revision;
          if (progress) progress(++*read_total);
        });
    o.segments_read = r.segments;
    o.checked_last_revision = r.last_revision;
    o.end = r.end;
  } catch (const Error& e) {
    o.problem = backup::EscapeForTerminal(e.what());
    if (!names_problem.empty()) o.problem += "; and " + names_problem;
    return o;
  }
  if (!names_problem.empty()) {
    o.problem = names_problem;
    if (o.segments_read > 0) {
      // By number: a merged segment counts as the numbers it replaces.
      o.problem += " (segments 1.." + std::to_string(chain.segments[o.segments_read - 1].parsed.seq_last) +
                   " check out, up to revision " +
                   std::to_string(o.checked_last_revision) + ")";
    }
    if (chain.problems.size() > 1) o.problem += " (+" + std::to_string(chain.problems.size() - 1) + " more)";
    return o;
  }
  o.state = ChainVerifyOutcome::State::kOk;
  return o;
}

}  // namespace

ChainVerifyReport VerifyChains(backup::Repository& repo, const std::optional<pipeline::KeySpec>& key,
                               const std::optional<std::string>& base_id,
                               const std::function<void(uint64_t)>& progress) {
  std::optional<std::string> only;
  if (base_id) only = repo.Find(*base_id, nullptr, std::nullopt).id;  // any kind, as VerifyBackups
  ChainScan scan = ScanChains(repo);
  ChainVerifyReport report;
  uint64_t read_total = 0;
  for (const Chain& c : scan.chains) {
    if (only && c.base.id != *only) continue;
    report.chains.push_back(VerifyOne(repo, c, key, progress, &read_total));
  }
  if (!only) {
    for (const SegmentObject& s : scan.orphans) {
      report.orphans.push_back(backup::EscapeForTerminal(s.name) + "  (continues backup " +
                               backup::EscapeForTerminal(s.parsed.stem + "-r" + std::to_string(s.parsed.revision)) +
                               ", which has no valid manifest: it cannot be restored from)");
    }
  }
  return report;
}

}  // namespace etcdsafe::follow
