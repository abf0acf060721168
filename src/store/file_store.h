// file:// backend: each object is a regular file under the root directory.
//
// Create() writes "<name>.tmp-<random>" (mode 0600, parent dirs 0700); Close() fsyncs,
// renames onto the name and fsyncs the directory, so a crash leaves either the old
// object, the new one, or an ignored temp file — never a partial object. The temp file
// is guarded by a CleanupGuard (removed on abandon and by the interrupt handler).
// Thread-safe: no shared mutable state beyond the filesystem.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace etcdsafe::store {

// root: absolute path (from "file:///root").
std::unique_ptr<Store> NewFileStore(const std::string& root);

}  // namespace etcdsafe::store
