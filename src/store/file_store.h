// file:// backend: each object is a regular file under the root directory.
//
// Create() writes "<name>.tmp-<random>" (O_EXCL, mode 0600, parent dirs 0700); Close()
// fsyncs, renames onto the name (rename replaces a symlink there, never writes through
// it) and fsyncs the directory, so a crash leaves either the old object, the new one, or
// an ignored temp file — never a partial object. The temp file is guarded by a
// CleanupGuard (removed on abandon and by the interrupt handler).
//
// Every operation resolves a name one path component at a time from the root with
// openat(O_NOFOLLOW): a symlink below the root is never followed (the root itself may
// be a symlink). Open() accepts regular files only and never blocks: it lstat()s, opens
// with O_NOFOLLOW|O_NONBLOCK, fstat()s the descriptor, then clears O_NONBLOCK.
// Thread-safe: no shared mutable state beyond the filesystem.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace etcdsafe::store {

// root: absolute path (from "file:///root"). Only options.max_list_entries applies.
std::unique_ptr<Store> NewFileStore(const std::string& root, const StoreOptions& options = {});

}  // namespace etcdsafe::store
