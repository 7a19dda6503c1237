// Catalog: the operator's desired definitions of images, VIPs and jails, as
// stored in the StateStore (images/NAME as v1::Image, vips/NAME as
// v1::VipSpec, jails/NAME as v1::Jail). It validates every definition at the
// API edge, enforces the cross-object rules (an image and a VIP belong to at
// most one jail, no two VIPs share an address or an (interface, vhid) pair,
// nothing in use is deleted or changed under its user), and writes each change
// as one compare-and-swap commit together with its event ("image.applied",
// "image.deleted", "vip.applied", "vip.deleted", "jail.applied",
// "jail.deleted"), whose reason names the actor ("created by operator:alice").
//
// What the catalog does not own: the observed parts written by others are
// kept as stored — an image's grant, export_endpoint (the operations engine),
// a jail's status (the operations engine; a created jail starts PENDING), and
// hosts (Membership; the catalog only reads them to check roles). The binding
// Image.jail is written by the catalog, in the same commit as the jail that
// takes or releases the image.
//
// Paths are checked against the hosts that use them: an image's path must
// lie below its storage host's image root and a jail's spec.mount_point below
// the jail root of each placement host, as the agents reported them in
// HostFacts at registration (the agents refuse anything else). A host whose
// agent reports no root is not refused: its path is accepted unchecked, the
// event says so as a warning, and the agent's own check still applies when the
// jail starts.
//
// Errors: InvalidArgument for a malformed definition or a path outside its
// host's root, AlreadyExists for an image whose backing file (storage host and
// path) is another image's, FailedPrecondition for one that conflicts with the
// stored state (unknown or wrong-role host, image or VIP in use, immutable
// field changed), NotFound for a missing object. Every message names the
// object and says what is wrong; on any error nothing is written.
// Re-applying an identical definition writes nothing (no revision change, no
// event) and reports changed = false.
//
// Concurrency: thread-safe. Writes are serialized by a mutex, and every
// commit compares the mod revisions of the keys it read and depends on, so a
// concurrent write by the operations engine (a jail's status, an image's
// grant) makes the commit retry on fresh data instead of being lost or
// overwriting it. The cross-object uniqueness checks that scan a whole kind
// (VIP address/vhid, "no other jail names this VIP", one image per backing
// file) rely on the catalog being the only writer of definitions (one
// Catalog, in the leading coordinator); the image-to-jail binding is in
// addition enforced by the store itself (compare on the image key).
#pragma once

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/time/clock.h"
#include "common/validation/validation.h"
#include "coordinator/store/state_store.h"
#include "jailover/v1/types.pb.h"

namespace jailover::coordinator::catalog {

// Event types written by the catalog.
inline constexpr char kImageAppliedEvent[] = "image.applied";
inline constexpr char kImageDeletedEvent[] = "image.deleted";
inline constexpr char kVipAppliedEvent[] = "vip.applied";
inline constexpr char kVipDeletedEvent[] = "vip.deleted";
inline constexpr char kJailAppliedEvent[] = "jail.applied";
inline constexpr char kJailDeletedEvent[] = "jail.deleted";

// Limits of the definitions.
// (Image sizes: common::ValidateImageSize.)
using common::kMaxVipPasswordBytes;  // One limit for the catalog and the agent.
inline constexpr int kMaxStandbys = 16;
inline constexpr int kMaxExecArgs = 64;

struct ApplyImageResult {
  // The image as stored (grant, export_endpoint and jail included).
  v1::Image image;
  bool created = false;
  // Something was written (false for an identical re-apply).
  bool changed = false;
  // The storage host reported no image root (an older agent), so the path
  // was accepted unchecked; the created event is then a warning saying so.
  bool path_unchecked = false;
};

struct ApplyVipResult {
  // The VIP as stored, with the password cleared.
  v1::VipSpec vip;
  bool created = false;
  bool changed = false;
};

struct ApplyJailResult {
  // The jail as stored (with its status; the status of a new jail is
  // PENDING).
  v1::Jail jail;
  bool created = false;
  // Something was written (false for an identical re-apply).
  bool changed = false;
  // The spec, image or VIP changed on an existing jail: it needs a restart
  // in place to take effect.
  bool spec_changed = false;
  // The placement changed on an existing jail.
  bool placement_changed = false;
  // The policy changed on an existing jail.
  bool policy_changed = false;
  // Placement hosts that reported no jail root (older agents), on which
  // spec.mount_point was accepted unchecked; the event is then a warning.
  std::vector<std::string> mount_point_unchecked_on;
};

class Catalog {
 public:
  // `store` and `clock` (event times) are not owned and must outlive this.
  Catalog(store::StateStore& store, common::Clock& clock);
  Catalog(const Catalog&) = delete;
  Catalog& operator=(const Catalog&) = delete;

  // --- Images. ---

  // Creates the image or re-applies it. size_bytes, filesystem, storage_host
  // and path cannot change once created (the backing file exists). The path
  // must be below the storage host's image root (InvalidArgument) and no
  // other image may name the same file on the same storage host
  // (AlreadyExists); paths compare as normalized by
  // common::ValidateAbsolutePath, which refuses "//", "." and ".." and drops
  // a trailing '/', so one file has one spelling.
  absl::StatusOr<ApplyImageResult> ApplyImage(const v1::ImageSpec& spec, absl::string_view actor);
  // Sorted by name.
  absl::StatusOr<std::vector<v1::Image>> ListImages() const;
  absl::StatusOr<v1::Image> GetImage(absl::string_view name) const;
  // Refused (FailedPrecondition) while a jail uses the image or while it is
  // granted to a host.
  absl::Status DeleteImage(absl::string_view name, absl::string_view actor);

  // --- VIPs. ---

  // Creates the VIP or updates it. advbase 0 is stored as 1. The password is
  // required on create; empty on update keeps the stored one. The interface,
  // vhid and address of a VIP a jail uses cannot change.
  absl::StatusOr<ApplyVipResult> ApplyVip(const v1::VipSpec& spec, absl::string_view actor);
  // Sorted by name, passwords cleared.
  absl::StatusOr<std::vector<v1::VipSpec>> ListVips() const;
  // The password is included only with `with_password` (for the operations
  // engine; never for an API reply).
  absl::StatusOr<v1::VipSpec> GetVip(absl::string_view name, bool with_password = false) const;
  // Refused (FailedPrecondition) while a jail uses the VIP.
  absl::Status DeleteVip(absl::string_view name, absl::string_view actor);

  // --- Jails. ---

  // Creates the jail definition or updates it; `desired.status` is ignored.
  // A spec.mount_point must be below the jail root of the preferred host and
  // of every standby (InvalidArgument). With `dry_run` everything is
  // validated and the result computed, but nothing is written.
  absl::StatusOr<ApplyJailResult> ApplyJail(const v1::Jail& desired, absl::string_view actor,
                                            bool dry_run = false);
  // Sorted by name; only jails whose status.host is `host` (if not empty)
  // and whose phase is among `phases` (if not empty).
  absl::StatusOr<std::vector<v1::Jail>> ListJails(
      absl::string_view host = "", const std::vector<v1::JailPhase>& phases = {}) const;
  absl::StatusOr<v1::Jail> GetJail(absl::string_view name) const;
  // Removes the jail definition and releases its image (Image.jail cleared).
  // Only for a jail that is STOPPED or was never placed (status.host empty);
  // the operations engine stops a placed jail first, then calls this.
  absl::Status ForgetJail(absl::string_view name, absl::string_view actor);

 private:
  v1::Event NewEvent(absl::string_view type) const;

  store::StateStore& store_;
  common::Clock& clock_;
  // Serializes the catalog's writes (see the file comment).
  absl::Mutex write_mu_;
};

}  // namespace jailover::coordinator::catalog
