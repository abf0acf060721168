// mvccpb.KeyValue, the value of every entry of etcd's bucket "key": read without copying
// and written the way etcd (gogoproto) writes it.
//
// ParseKeyValueView reads the fields (key 1, create_revision 2, mod_revision 3, version 4,
// value 5, lease 6) as views into the input; unknown fields are skipped as proto.Unmarshal
// does; the last occurrence of a field wins. nullopt for bytes that are not such a message:
// a truncated varint or length, field number 0, an unknown wire type, or a known field with
// the wrong wire type. EncodeKeyValue writes fields 1..6 in order, omitting zero values and
// empty bytes (proto3, as etcd's marshaller does), so Encode(Parse(x)) == x for what etcd
// wrote.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"

namespace etcdsafe::etcdfmt {

struct KeyValueView {
  std::string_view key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};

std::optional<KeyValueView> ParseKeyValueView(Bytes pb);
std::string EncodeKeyValue(const KeyValueView& kv);

}  // namespace etcdsafe::etcdfmt
