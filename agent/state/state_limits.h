// What one agent state file may hold. Every field the agent persists is
// bounded, so the file has a largest possible size, and the loader's own
// limit (kMaxStateFileBytes) lies above it: a file the agent wrote always
// loads. (Issue 15: with unbounded fields, 24 CreateJail calls with 3 MiB of
// jail params wrote a 75.5 MB file that the agent then refused to read.)
//
// Where each bound is enforced:
// - at the API edge (AgentCore), before anything happens, with an error that
//   names the field and the limit: InvalidArgument for a field too large,
//   ResourceExhausted for one object too many on this host;
// - again by AgentStateStore on every write (counts, recorded results, and
//   the size of the file itself), so no path around the edge can grow it.
//
// The largest file, as JSON (what AgentStateStore writes): a string byte
// costs at most 6 bytes ('<', '>' and control bytes are written as \u003c),
// bytes fields are base64 (4/3), and each map entry or list element adds its
// indentation and quotes. tests/unit/agent/state/agent_state_store_test.cc
// (LargestStateFileFitsTheLoaderLimit) builds the largest object of each kind
// the edge accepts and measures it (protobuf 3.21):
//   jails    256 x 46.2 KiB (8 KiB spec, 64 entries per list)  = 11.6 MiB
//   images  1000 x 19.5 KiB (four paths of 1023 bytes)        = 19.0 MiB
//   VIPs     512 x  0.5 KiB                                    =  0.2 MiB
//   epochs 10000 x  0.1 KiB                                    =  1.0 MiB
//   results 2000 x  5.9 KiB (2 KiB response, 512 B message)    = 11.6 MiB
//   total                                                      = 43.4 MiB < 64 MiB
// A realistic host (dozens of jails, specs under 1 KiB) writes well under
// 1 MiB. Raising a limit means re-running that test and updating this table.
#pragma once

#include <cstddef>

#include "common/validation/validation.h"

namespace jailover::agent {

// Objects on one host. Images are also bounded by their slots (kMaxSlot).
inline constexpr int kMaxStoredJails = 256;
inline constexpr int kMaxStoredImages = 1000;
inline constexpr int kMaxStoredVips = 512;
// Images whose newest epoch is remembered. Epochs are the fencing memory and
// are never forgotten, so this bounds the distinct images a host ever sees.
inline constexpr int kMaxStoredEpochs = 10000;

// A jail's spec: the whole of it, serialized, and its parts.
inline constexpr size_t kMaxJailSpecBytes = 8 << 10;
// Entries of each list or map of the spec (exec_start, exec_stop, allow,
// params, limits, env).
inline constexpr int kMaxJailSpecEntries = 64;
// One argv element, param value or env value.
inline constexpr size_t kMaxJailSpecValueBytes = 4096;
// A param or env name, an allow entry, an rctl resource, action or amount.
inline constexpr size_t kMaxJailSpecNameBytes = 64;
// FreeBSD's MAXHOSTNAMELEN - 1.
inline constexpr size_t kMaxJailHostnameBytes = 255;
// A CARP key (one limit for the catalog and the agent).
using common::kMaxVipPasswordBytes;

// The remembered result of one call (idempotency): its response, serialized
// (a larger one is not remembered: a repeat runs again), and its error
// message (cut to this length).
inline constexpr size_t kMaxRecordedResponseBytes = 2 << 10;
inline constexpr size_t kMaxRecordedMessageBytes = 512;
// FsckImage's output as remembered: its end (where the checker's verdict
// is). ExecInJail's output is never remembered, only its exit code.
inline constexpr size_t kMaxRecordedFsckOutputBytes = 1 << 10;

// The state file: AgentStateStore reads no larger file, and writes none
// either (the change that would make it larger is refused).
inline constexpr size_t kMaxStateFileBytes = 64 << 20;

}  // namespace jailover::agent
