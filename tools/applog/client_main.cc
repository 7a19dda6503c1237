// jailover-applog-client: drives the lab's sample jail service
// (docs/lab-sample.md).
//
//   write --target ADDR:PORT (--count N | --run-until-signal) [--interval-ms M]
//         [--acked FILE] [--timeout-ms T]
//       Appends records 1, 2, 3... Each is retried (on a new connection, with
//       a short backoff: the service may be failing over) until it is
//       acknowledged; every acknowledged id is appended to FILE as
//       "<id> <unix ms>" and fsync'd before the next record is sent. FILE
//       must be new or empty. SIGTERM/SIGINT stop it after the record in
//       flight. Prints a summary: acknowledged, retries, the longest gap
//       between two consecutive acknowledgements (the outage a client saw).
//   check --target ADDR:PORT --acked FILE [--timeout-ms T]
//       READs the log back (again, within 30 s, if the connection fails
//       midway: only a complete READ is judged); exit 0 and "all N
//       acknowledged records present",
//       else exit 1 and the missing ids (up to 20). Then the records' writer
//       tags: "writers in order: ..." (or "writers: none tagged"), or exit 1
//       and the first record an older writer stored after a newer one; and
//       the same over the writers the acknowledgements named ("acknowledged
//       by, in order: ..."), or exit 1 and the first record an older writer
//       acknowledged after a newer one.
//   outage --acked FILE
//       The gaps over 200 ms between consecutive acknowledgements.
// Every socket operation has a timeout (--timeout-ms, default 2000).
// Exit codes: 0 fine, 1 failed (check found records missing or an older
// writer's record after a newer one's, I/O error), 2 bad usage.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tools/applog/acked.h"
#include "tools/applog/line_conn.h"
#include "tools/applog/protocol.h"
#include "tools/applog/writers.h"

namespace {

using jailover::applog::Ack;
using jailover::applog::LineConn;

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

// Outage lines are gaps longer than this.
constexpr int64_t kOutageThresholdMs = 200;
// Backoff between attempts at one record: doubles from the first to the last.
constexpr int kFirstBackoffMs = 20;
constexpr int kMaxBackoffMs = 200;
// How long `check` keeps trying to reach the service.
constexpr int kCheckConnectWindowMs = 30000;
// Largest acked file `check` and `outage` read.
constexpr size_t kMaxAckedBytes = 256u << 20;

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Sleeps up to `ms`; a stop signal cuts it short.
void SleepMs(int ms) {
  timespec ts{ms / 1000, static_cast<long>(ms % 1000) * 1000000L};
  if (!g_stop) ::nanosleep(&ts, nullptr);
}

constexpr char kUsage[] =
    "usage:\n"
    "  jailover-applog-client write --target ADDR:PORT (--count N | --run-until-signal)\n"
    "      [--interval-ms M] [--acked FILE] [--timeout-ms T]\n"
    "  jailover-applog-client check --target ADDR:PORT --acked FILE [--timeout-ms T]\n"
    "  jailover-applog-client outage --acked FILE\n";

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "jailover-applog-client: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

int Fail(const std::string& why) {
  std::fprintf(stderr, "jailover-applog-client: %s\n", why.c_str());
  return 1;
}

struct Args {
  std::string target_text;
  sockaddr_in target{};
  std::string acked;
  uint64_t count = 0;
  bool until_signal = false;
  int interval_ms = 0;
  int timeout_ms = 2000;
};

int ParseInt(const std::string& flag, const std::string& text, int min, int max) {
  const std::optional<uint64_t> value = jailover::applog::ParseId(text);
  if (!value.has_value() || *value < static_cast<uint64_t>(min) ||
      *value > static_cast<uint64_t>(max)) {
    Usage(flag + ": \"" + text + "\" is not a number from " + std::to_string(min) + " to " +
          std::to_string(max));
  }
  return static_cast<int>(*value);
}

Args ParseArgs(const std::string& command, int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--run-until-signal") {
      a.until_signal = true;
      continue;
    }
    if (i + 1 >= argc) Usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--target") {
      std::string error;
      const std::optional<sockaddr_in> addr =
          jailover::applog::ParseAddress(value, /*allow_port_zero=*/false, &error);
      if (!addr.has_value()) Usage("--target: " + error);
      a.target_text = value;
      a.target = *addr;
    } else if (flag == "--acked") {
      a.acked = value;
    } else if (flag == "--count") {
      const std::optional<uint64_t> count = jailover::applog::ParseId(value);
      if (!count.has_value() || *count == 0)
        Usage("--count: \"" + value + "\" is not a count >= 1");
      a.count = *count;
    } else if (flag == "--interval-ms") {
      a.interval_ms = ParseInt(flag, value, 0, 3600000);
    } else if (flag == "--timeout-ms") {
      a.timeout_ms = ParseInt(flag, value, 1, 3600000);
    } else {
      Usage("unknown flag " + flag);
    }
  }
  const bool needs_target = command == "write" || command == "check";
  if (needs_target && a.target_text.empty()) Usage(command + " needs --target ADDR:PORT");
  if (command != "write" && a.acked.empty()) Usage(command + " needs --acked FILE");
  if (command == "write" && (a.count == 0) == !a.until_signal) {
    Usage("write needs exactly one of --count N and --run-until-signal");
  }
  return a;
}

// The acknowledgements recorded in `path`.
std::optional<std::vector<Ack>> ReadAcked(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = path + ": " + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
    if (text.size() > kMaxAckedBytes) {
      *error = path + ": larger than " + std::to_string(kMaxAckedBytes) + " bytes";
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  int skipped = 0;
  std::optional<std::vector<Ack>> acks = jailover::applog::ParseAcked(text, &skipped, error);
  if (!acks.has_value()) {
    *error = path + ": " + *error;
  } else if (skipped > 0) {
    std::fprintf(stderr, "jailover-applog-client: %s: ignored an unfinished last line\n",
                 path.c_str());
  }
  return acks;
}

std::string Payload(uint64_t id) { return "record " + std::to_string(id) + " from the lab client"; }

// The writer named by an acknowledgement of `id`: "" for "OK <id>", the tag
// for "OK <id> <writer>"; nullopt if `reply` is neither.
std::optional<std::string> AckedBy(const std::string& reply, uint64_t id) {
  const std::string ok = "OK " + std::to_string(id);
  if (reply == ok) return std::string();
  if (reply.rfind(ok + " ", 0) != 0) return std::nullopt;
  std::string writer = reply.substr(ok.size() + 1);
  if (!jailover::applog::ValidWriterTag(writer)) return std::nullopt;
  return writer;
}

// One attempt at appending `id` on *conn (connecting first if needed).
// True when acknowledged, with *writer set to the writer the server named;
// on failure *conn is dropped and *error says why.
bool TryAppend(const Args& a, uint64_t id, std::unique_ptr<LineConn>* conn, std::string* writer,
               std::string* error) {
  if (*conn == nullptr) {
    *conn = LineConn::Connect(a.target, a.timeout_ms, error);
    if (*conn == nullptr) return false;
  }
  std::optional<std::string> reply;
  if ((*conn)->Send("APPEND " + std::to_string(id) + " " + Payload(id) + "\n", error)) {
    reply = (*conn)->ReadLine(error);
  }
  if (reply.has_value()) {
    std::optional<std::string> by = AckedBy(*reply, id);
    if (by.has_value()) {
      *writer = std::move(*by);
      return true;
    }
  }
  if (reply.has_value()) *error = "answer \"" + reply->substr(0, 200) + "\"";
  conn->reset();
  return false;
}

int Write(const Args& a) {
  int acked_fd = -1;
  if (!a.acked.empty()) {
    acked_fd = ::open(a.acked.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat st {};
    if (acked_fd < 0 || ::fstat(acked_fd, &st) != 0) {
      return Fail("cannot open " + a.acked + ": " + std::strerror(errno));
    }
    if (st.st_size != 0) {
      return Fail(a.acked + " already holds acknowledgements; give write a new file");
    }
  }
  uint64_t acked = 0, retries = 0;
  int64_t last_ack_mono = 0, longest_gap = 0;
  uint64_t longest_gap_after = 0;
  std::unique_ptr<LineConn> conn;
  for (uint64_t id = 1; (a.until_signal || id <= a.count) && !g_stop; ++id) {
    std::string error, first_error, writer;
    int backoff_ms = kFirstBackoffMs;
    int64_t failing_since = 0;
    bool ok = false;
    while (!g_stop) {
      if (TryAppend(a, id, &conn, &writer, &error)) {
        ok = true;
        break;
      }
      ++retries;
      if (failing_since == 0) {
        failing_since = MonotonicMs();
        first_error = error;
        std::fprintf(stderr,
                     "jailover-applog-client: record %llu not acknowledged (%s); retrying\n",
                     static_cast<unsigned long long>(id), error.c_str());
      }
      SleepMs(backoff_ms);
      backoff_ms = std::min(backoff_ms * 2, kMaxBackoffMs);
    }
    if (!ok) break;
    const int64_t now_mono = MonotonicMs();
    if (failing_since != 0) {
      std::fprintf(stderr,
                   "jailover-applog-client: record %llu acknowledged after %lld ms of "
                   "retries\n",
                   static_cast<unsigned long long>(id),
                   static_cast<long long>(now_mono - failing_since));
    }
    if (last_ack_mono != 0 && now_mono - last_ack_mono > longest_gap) {
      longest_gap = now_mono - last_ack_mono;
      longest_gap_after = id - 1;
    }
    last_ack_mono = now_mono;
    ++acked;
    if (acked_fd >= 0) {
      const std::string line = jailover::applog::FormatAck(Ack{id, UnixMs(), writer});
      if (::write(acked_fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
          ::fsync(acked_fd) != 0) {
        return Fail("cannot record the acknowledgement of " + std::to_string(id) + " in " +
                    a.acked + ": " + std::strerror(errno));
      }
    }
    if (a.interval_ms > 0) SleepMs(a.interval_ms);
  }
  if (acked_fd >= 0) ::close(acked_fd);
  std::printf("acknowledged %llu records, %llu retries, longest gap between acks %lld ms",
              static_cast<unsigned long long>(acked), static_cast<unsigned long long>(retries),
              static_cast<long long>(longest_gap));
  if (longest_gap > 0) {
    std::printf(" (after record %llu)", static_cast<unsigned long long>(longest_gap_after));
  }
  std::printf("\n");
  return 0;
}

int Check(const Args& a) {
  std::string error;
  const std::optional<std::vector<Ack>> acked = ReadAcked(a.acked, &error);
  if (!acked.has_value()) return Fail(error);
  // The whole log in one READ. A connection that fails midway (the VIP
  // moved, a reset) proves nothing about the log: connect and READ again,
  // within the window. Only a READ that ends with "END n" is judged.
  std::vector<jailover::applog::Record> records;
  std::set<uint64_t> stored;
  uint64_t lines = 0;
  const int64_t give_up = MonotonicMs() + kCheckConnectWindowMs;
  for (bool complete = false; !complete;) {
    std::unique_ptr<LineConn> conn;
    while (conn == nullptr) {
      conn = LineConn::Connect(a.target, a.timeout_ms, &error);
      if (conn != nullptr) break;
      if (MonotonicMs() >= give_up || g_stop) {
        return Fail("cannot reach " + a.target_text + " within " +
                    std::to_string(kCheckConnectWindowMs / 1000) + " s: " + error);
      }
      SleepMs(200);
    }
    records.clear();
    stored.clear();
    lines = 0;
    bool interrupted = !conn->Send("READ\n", &error);
    while (!interrupted) {
      const std::optional<std::string> line = conn->ReadLine(&error);
      if (!line.has_value()) {
        interrupted = true;
        break;
      }
      if (line->rfind("ERR ", 0) == 0) return Fail("READ: the server answered \"" + *line + "\"");
      if (line->rfind("END ", 0) == 0) {
        const std::optional<uint64_t> count = jailover::applog::ParseId(line->substr(4));
        if (!count.has_value() || *count != lines) {
          return Fail("READ returned " + std::to_string(lines) + " records but ended with \"" +
                      *line + "\"");
        }
        complete = true;
        break;
      }
      ++lines;
      std::optional<jailover::applog::Record> record = jailover::applog::ParseRecord(*line);
      if (!record.has_value()) {
        return Fail("the log holds a malformed record: \"" + line->substr(0, 200) + "\"");
      }
      stored.insert(record->id);
      record->payload.clear();  // only the id and the writer are needed
      records.push_back(std::move(*record));
    }
    if (interrupted) {
      if (MonotonicMs() >= give_up || g_stop) {
        return Fail("READ ended early after " + std::to_string(lines) + " records: " + error);
      }
      std::printf("READ interrupted after %llu records (%s); reading again\n",
                  static_cast<unsigned long long>(lines), error.c_str());
      SleepMs(200);
    }
  }
  std::vector<uint64_t> missing;
  for (const Ack& ack : *acked) {
    if (stored.count(ack.id) == 0) missing.push_back(ack.id);
  }
  if (missing.empty()) {
    std::printf("all %zu acknowledged records present (%llu stored)\n", acked->size(),
                static_cast<unsigned long long>(lines));
  } else {
    std::printf("%zu of %zu acknowledged records MISSING:", missing.size(), acked->size());
    for (size_t i = 0; i < missing.size() && i < 20; ++i) {
      std::printf(" %llu", static_cast<unsigned long long>(missing[i]));
    }
    std::printf("%s\n", missing.size() > 20 ? " ..." : "");
  }
  // Which servers stored the records, and that no older one wrote after a
  // newer one.
  const jailover::applog::WriterOrder writers = jailover::applog::CheckWriterOrder(records);
  std::printf("%s\n", writers.Describe().c_str());
  // And that no older server acknowledged a record after a newer one did
  // (a stale host still serving): the same order, over the acknowledgements.
  std::vector<jailover::applog::Record> acks;
  bool named = false;
  for (const Ack& ack : *acked) {
    named = named || !ack.writer.empty();
    acks.push_back(jailover::applog::Record{ack.id, "", ack.writer});
  }
  const jailover::applog::WriterOrder ackers = jailover::applog::CheckWriterOrder(
      acks, jailover::applog::WriterOrderOf::kAcknowledgements);
  if (named) std::printf("%s\n", ackers.Describe().c_str());
  return missing.empty() && !writers.violation.has_value() && !ackers.violation.has_value() ? 0
                                                                                            : 1;
}

int Outage(const Args& a) {
  std::string error;
  const std::optional<std::vector<Ack>> acked = ReadAcked(a.acked, &error);
  if (!acked.has_value()) return Fail(error);
  for (const jailover::applog::Gap& gap : jailover::applog::GapsOver(*acked, kOutageThresholdMs)) {
    std::printf("gap of %lld ms between acks of records %llu and %llu (ended at %lld)\n",
                static_cast<long long>(gap.ms()), static_cast<unsigned long long>(gap.before.id),
                static_cast<unsigned long long>(gap.after.id),
                static_cast<long long>(gap.after.unix_ms));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage("no command");
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::printf("%s", kUsage);
    return 0;
  }
  if (command != "write" && command != "check" && command != "outage") {
    Usage("unknown command " + command);
  }
  const Args args = ParseArgs(command, argc, argv);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;  // no SA_RESTART: a signal cuts waits short
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  if (command == "write") return Write(args);
  if (command == "check") return Check(args);
  return Outage(args);
}
