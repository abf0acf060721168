// etcdsafe backup --follow: continuous backup (src/follow/recorder.h). A full backup,
// then every change recorded as segments in the repository until SIGTERM/SIGINT, which
// stores what was recorded and exits 0. The flags live on `backup` (cmd_backup.cc calls
// AddFollowFlags); this file runs the recorder. Also `backups compact`: merges the small
// segments of every chain (src/follow/compact.h), as the recorder does in the background.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

#include "base/bytes.h"
#include "base/error.h"
#include "base/file.h"
#include "base/signals.h"
#include "commands.h"
#include "follow/compact.h"
#include "follow/recorder.h"
#include "pipeline/compress.h"
#include "repo_flags.h"

namespace etcdsafe::cli {

uint64_t ParseSize(const std::string& text, const std::string& flag) {
  uint64_t n = 0;
  try {
    n = ParseByteSize(text);
  } catch (const Error& e) {
    throw e.Wrap(flag);
  }
  if (n == 0) throw Error(ErrorCode::kInvalidArgument, flag + " must be positive");
  return n;
}

namespace {

// A duration flag where "0" means never.
std::chrono::milliseconds ParseDurationOrZero(const std::string& text, const std::string& flag) {
  if (text == "0") return std::chrono::milliseconds(0);
  return ParseDuration(text, flag);
}

std::string Stamp() {
  char buf[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void AddFollowFlags(CLI::App& cmd, FollowFlags& f) {
  cmd.add_flag("--follow", f.follow,
               "continuous backup: a full backup, then every change as segments (RPO ~ --segment-max-age) until "
               "SIGTERM");
  cmd.add_option("--segment-max-age", f.segment_max_age, "--follow: store a segment once it is this old")
      ->capture_default_str();
  cmd.add_option("--segment-max-size", f.segment_max_size, "--follow: ... or this big")->capture_default_str();
  cmd.add_option("--heartbeat", f.heartbeat, "--follow: when idle, prove the revision this often")
      ->capture_default_str();
  cmd.add_option("--hash-every", f.hash_every, "--follow: record etcd's HashKV this often")->capture_default_str();
  cmd.add_option("--full-every", f.full_every, "--follow: a new full backup (a new chain) this often")
      ->capture_default_str();
  cmd.add_option("--full-every-events", f.full_every_events, "--follow: ... or after this many events (0: never)")
      ->capture_default_str();
  cmd.add_option("--spill-dir", f.spill_dir,
                 "where the snapshot stream (and with --follow, segments) waits while compression or uploads lag "
                 "(default $TMPDIR)");
  cmd.add_option("--max-queue-memory", f.max_queue_memory,
                 "--follow: segments waiting for upload kept in memory up to this, then spilled")
      ->capture_default_str();
  cmd.add_option("--max-spill", f.max_spill,
                 "at most this much of the stream waits there (then etcd's stream slows down); --follow: beyond this "
                 "much spilled, the chain ends (a gap)")
      ->capture_default_str();
  cmd.add_option("--compact-every", f.compact_every,
                 "--follow: merge small segments of the repository's chains this often (0: never)")
      ->capture_default_str();
  cmd.add_option("--compact-min-age", f.compact_min_age, "--follow: ... leaving segments younger than this alone")
      ->capture_default_str();
  cmd.add_option("--compact-target-size", f.compact_target_size, "--follow: ... into segments of up to this size")
      ->capture_default_str();
  cmd.add_option("--compact-keep-last", f.compact_keep_last, "--follow: ... never merging a chain's newest N segments")
      ->capture_default_str();
}

void RunFollow(const GlobalFlags& g, const RepoFlags& rf, const std::string& compression, int level,
               const FollowFlags& f) {
  if (rf.repos.size() != 1) throw Error(ErrorCode::kInvalidArgument, "--follow records into exactly one --repo");
  follow::FollowOptions o;
  o.repo_url = rf.repos[0];
  o.store_options = rf.StoreOptions();
  o.client = ToClientConfig(g);
  o.compression = pipeline::ParseCompression(compression);
  o.compression_level = level;
  o.key = rf.Key();
  if (o.key && !o.key->warning.empty()) std::fprintf(stderr, "etcdsafe: warning: %s\n", o.key->warning.c_str());
  o.segment_max_age = ParseDuration(f.segment_max_age, "--segment-max-age");
  o.segment_max_bytes = ParseSize(f.segment_max_size, "--segment-max-size");
  o.heartbeat = ParseDuration(f.heartbeat, "--heartbeat");
  o.hash_every = ParseDuration(f.hash_every, "--hash-every");
  o.full_every = ParseDuration(f.full_every, "--full-every");
  o.full_every_events = f.full_every_events;
  o.spill_dir = f.spill_dir;
  o.max_spill_bytes = ParseSize(f.max_spill, "--max-spill");
  o.max_memory_bytes = ParseSize(f.max_queue_memory, "--max-queue-memory");
  o.compact_every = ParseDurationOrZero(f.compact_every, "--compact-every");
  o.compact_min_age = ParseDurationOrZero(f.compact_min_age, "--compact-min-age");
  o.compact_target_bytes = ParseSize(f.compact_target_size, "--compact-target-size");
  o.compact_keep_last = f.compact_keep_last;
  if (o.segment_max_age.count() <= 0 || o.heartbeat.count() <= 0 || o.hash_every.count() <= 0 ||
      o.full_every.count() <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "--follow durations must be positive");
  }
  static std::atomic<int> signals{0};
  o.should_stop = [] { return signals.load() > 0; };
  o.log = [](const std::string& line) { std::fprintf(stderr, "%s etcdsafe follow: %s\n", Stamp().c_str(), line.c_str()); };
  // First SIGTERM/SIGINT: store what was recorded and exit 0. A second one later than a
  // second after: give up at once (what is not stored is still in etcd's history).
  static std::atomic<int64_t> first_ms{0};
  SetSignalForwarder([](int sig) {
    (void)sig;
    int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    if (signals.fetch_add(1) == 0) {
      first_ms = now;
      return;
    }
    if (now - first_ms.load() > 1000) {
      RemovePendingCleanups();
      std::fprintf(stderr, "etcdsafe follow: second signal: exiting without storing what is queued\n");
      _exit(130);
    }
  });
  follow::Recorder rec(std::move(o));
  try {
    rec.Run();
  } catch (...) {
    SetSignalForwarder({});
    throw;
  }
  SetSignalForwarder({});
  follow::FollowStatus s = rec.status();
  std::printf("follow stopped: chain %s, revision %lld stored, %llu segments, %llu events, %llu gaps\n",
              s.chain.c_str(), static_cast<long long>(s.stored_revision),
              static_cast<unsigned long long>(s.segments_stored), static_cast<unsigned long long>(s.events_recorded),
              static_cast<unsigned long long>(s.gaps));
}

void AddCompactCommand(CLI::App& app, GlobalFlags& g) {
  (void)g;
  CLI::App* backups = app.get_subcommand("backups");
  struct CompactFlags {
    std::string min_age = "1h", target_size = "64MiB", compression = "zstd";
    int level = 0;
    size_t keep_last = 16;
    bool dry_run = false;
  };
  auto rf = std::make_shared<RepoFlags>();
  auto cf = std::make_shared<CompactFlags>();
  CLI::App* cmd = backups->add_subcommand(
      "compact", "Merge the small segments of continuous backup chains into larger ones (as backup --follow does)");
  AddRepoFlags(*cmd, *rf);
  cmd->add_option("--min-age", cf->min_age, "leave segments younger than this alone (0: none)")->capture_default_str();
  cmd->add_option("--target-size", cf->target_size, "merge into segments of up to this many bytes (before compression)")
      ->capture_default_str();
  cmd->add_option("--keep-last", cf->keep_last, "never merge the newest N segments of a chain")->capture_default_str();
  cmd->add_option("--compression", cf->compression, "of merged segments: zstd, gzip or none")->capture_default_str();
  cmd->add_option("--compression-level", cf->level, "codec level (0: default)");
  cmd->add_flag("--dry-run", cf->dry_run, "read and print what would be merged; write and remove nothing");
  cmd->callback([rf, cf] {
    auto repo = rf->OpenOne();
    follow::CompactOptions o;
    o.min_age = std::chrono::duration_cast<std::chrono::seconds>(ParseDurationOrZero(cf->min_age, "--min-age"));
    o.target_bytes = ParseSize(cf->target_size, "--target-size");
    o.keep_last = cf->keep_last;
    o.compression = pipeline::ParseCompression(cf->compression);
    o.compression_level = cf->level;
    o.dry_run = cf->dry_run;
    follow::CompactReport r;
    std::exception_ptr failed;
    try {
      follow::CompactRepository(*repo, rf->KeyWithWarning(), o, &r);
    } catch (const Error&) {
      failed = std::current_exception();
    }
    for (const auto& a : r.actions) std::printf("%s\n", a.c_str());
    for (const auto& n : r.notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
    if (failed) std::rethrow_exception(failed);
    std::printf(cf->dry_run ? "dry run: %llu merged segments would be written, replacing %llu; %llu objects would be "
                              "removed; %llu segments read\n"
                            : "%llu merged segments written, replacing %llu; %llu objects removed; %llu segments read\n", static_cast<unsigned long long>(r.merged_written),
                static_cast<unsigned long long>(r.segments_replaced), static_cast<unsigned long long>(r.removed),
                static_cast<unsigned long long>(r.segments_read));
  });
}

}  // namespace etcdsafe::cli
