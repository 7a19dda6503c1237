#include "common/proto/time_util.h"

namespace jailover::common {

absl::Duration FromProtoDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProtoDuration(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

absl::Time FromProtoTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void ToProtoTimestamp(absl::Time t, google::protobuf::Timestamp* out) {
  absl::Duration since_epoch = t - absl::UnixEpoch();
  // Timestamps keep nanos in [0, 1e9) also before 1970: floor the seconds.
  int64_t seconds = absl::ToInt64Seconds(since_epoch);
  absl::Duration rest = since_epoch - absl::Seconds(seconds);
  if (rest < absl::ZeroDuration()) {
    seconds -= 1;
    rest += absl::Seconds(1);
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(rest)));
}

}  // namespace jailover::common
