// Conversions between absl time types and google.protobuf.Duration /
// Timestamp, used wherever API messages carry times. Pure; thread-safe.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"

namespace jailover::common {

absl::Duration FromProtoDuration(const google::protobuf::Duration& d);
void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out);

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& t);
void ToProtoTimestamp(absl::Time t, google::protobuf::Timestamp* out);

}  // namespace jailover::common
