// EtcdClient: a thin, thread-safe client of etcd's v3 gRPC API (the subset
// in proto/etcd/etcd.proto) over one or more endpoints.
//
// Endpoints: HOST:PORT of the cluster's members. Calls go to the current
// endpoint; when it is unreachable or has no leader (UNAVAILABLE), or does
// not answer in time (DEADLINE_EXCEEDED), a read (Range, a Txn without
// writes, MemberList), a lease call or a Watch creation is tried on the
// next endpoints in turn, and the first that answers becomes current. A Txn
// or Put is retried on another endpoint only when the call failed before
// reaching a server (UNAVAILABLE from the channel, not a DEADLINE_EXCEEDED:
// a timed-out write may have been applied, and callers guard their writes
// with compares anyway).
//
// Every call has a deadline (options.call_timeout). Errors are absl statuses
// naming the endpoint and etcd's message: UNAVAILABLE / DEADLINE_EXCEEDED as
// such, etcd's "requested lease not found" as NotFound, "required revision
// has been compacted" as OutOfRange, other etcd refusals (too many txn ops,
// request too large) as InvalidArgument or FailedPrecondition.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/tls/credentials.h"
#include "etcd/etcd.grpc.pb.h"
#include "etcd/etcd.pb.h"

namespace jailover::coordinator::etcd {

struct EtcdClientOptions {
  // HOST:PORT of each member; at least one.
  std::vector<std::string> endpoints;
  // Plaintext unless set (etcd's client TLS).
  common::TlsOptions tls;
  // Deadline of one call on one endpoint.
  absl::Duration call_timeout = absl::Seconds(2);
};

// The end of the key range of every key starting with `prefix` (etcd's
// "prefix + 1": the last byte below 0xff incremented, the rest dropped;
// "\0" for an empty prefix or one of all 0xff = every key >= prefix).
std::string PrefixRangeEnd(absl::string_view prefix);

// A watch on one key range. Next blocks for the next response; Cancel (from
// any thread) makes a blocked Next return Cancelled. Destroying cancels.
// Watches require a leader (etcd's "hasleader" metadata): a member that
// loses its raft leader ends the stream (Unavailable) instead of going
// silently stale.
class EtcdWatch {
 public:
  virtual ~EtcdWatch() = default;
  // The next WatchResponse with events or a progress notification (the
  // "created" response is consumed by Watch). Unavailable when the stream
  // broke (the caller re-creates the watch from its last revision + 1),
  // OutOfRange when the start revision was compacted, Cancelled after
  // Cancel.
  virtual absl::StatusOr<::etcdserverpb::WatchResponse> Next() = 0;
  virtual void Cancel() = 0;
};

class EtcdClient {
 public:
  // InvalidArgument for no endpoint or a malformed one. Does not connect.
  static absl::StatusOr<std::unique_ptr<EtcdClient>> Create(EtcdClientOptions options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // `timeout` > 0 overrides options.call_timeout for this call (per
  // endpoint tried): the election uses a fraction of its lease ttl, so a
  // member that went silent is left in time.
  absl::StatusOr<::etcdserverpb::RangeResponse> Range(
      const ::etcdserverpb::RangeRequest& request, absl::Duration timeout = absl::ZeroDuration());
  absl::StatusOr<::etcdserverpb::PutResponse> Put(const ::etcdserverpb::PutRequest& request);
  absl::StatusOr<::etcdserverpb::TxnResponse> Txn(const ::etcdserverpb::TxnRequest& request,
                                                  absl::Duration timeout = absl::ZeroDuration());

  // A lease of `ttl` (rounded up to whole seconds; etcd may raise it to
  // its minimum — the response's TTL is what was granted).
  absl::StatusOr<::etcdserverpb::LeaseGrantResponse> LeaseGrant(absl::Duration ttl);
  // Revokes `id` (its keys are deleted). NotFound if it does not exist.
  absl::Status LeaseRevoke(int64_t id);
  // One keep-alive round trip for `id`; the response's TTL is the seconds
  // the lease now has left (<= 0: the lease is gone).
  absl::StatusOr<::etcdserverpb::LeaseKeepAliveResponse> LeaseKeepAlive(
      int64_t id, absl::Duration timeout = absl::ZeroDuration());

  // Starts a watch of [key, range_end) from `start_revision` (0 = now) and
  // waits for etcd to confirm it ("created").
  absl::StatusOr<std::unique_ptr<EtcdWatch>> Watch(
      const ::etcdserverpb::WatchCreateRequest& request,
      absl::Duration create_timeout = absl::ZeroDuration());

  // Maintenance.Status of one member, asked at `endpoint` (one of the
  // options' endpoints or another member's), no failover.
  absl::StatusOr<::etcdserverpb::StatusResponse> MemberStatus(const std::string& endpoint);
  // Cluster.MemberList, with failover.
  absl::StatusOr<::etcdserverpb::MemberListResponse> MemberList();

  const std::vector<std::string>& endpoints() const { return options_.endpoints; }

 private:
  struct Endpoint;
  explicit EtcdClient(EtcdClientOptions options);
  absl::Duration Timeout(absl::Duration timeout) const;

  const EtcdClientOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace jailover::coordinator::etcd
