#include "agent/driver/linux/proc_fs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file/file_util.h"

namespace jailover::agent::linux_driver {
namespace {

// /proc files are small; cmdline is capped by the kernel's ARG_MAX use.
constexpr size_t kMaxProcFileBytes = 256 * 1024;

std::string PidPath(const std::string& proc_root, pid_t pid, absl::string_view file) {
  return absl::StrCat(proc_root, "/", pid, "/", file);
}

// ReadFileToString, with "gone" (ENOENT, ESRCH) as NotFound.
absl::StatusOr<std::string> ReadProcFile(const std::string& path) {
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxProcFileBytes);
  if (!text.ok() && !absl::IsNotFound(text.status()) &&
      absl::StrContains(text.status().message(), "No such process")) {
    return absl::NotFoundError(text.status().message());
  }
  return text;
}

}  // namespace

absl::Status ParseProcStat(absl::string_view text, ProcessInfo* info) {
  const size_t close = text.rfind(')');
  if (close == absl::string_view::npos) {
    return absl::InternalError("/proc/PID/stat: no ')' after the command name");
  }
  // Fields from 3 on: state ppid pgrp session tty_nr tpgid flags minflt
  // cminflt majflt cmajflt utime stime cutime cstime priority nice
  // num_threads itrealvalue starttime ...
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::StripAsciiWhitespace(text.substr(close + 1)), ' ',
                     absl::SkipEmpty());
  constexpr size_t kStartTimeIndex = 22 - 3;
  if (fields.size() <= kStartTimeIndex || fields[0].size() != 1) {
    return absl::InternalError(absl::StrCat("/proc/PID/stat: ", fields.size(),
                                            " fields after the command name, want more than ",
                                            kStartTimeIndex));
  }
  int64_t ppid = 0;
  uint64_t start = 0;
  if (!absl::SimpleAtoi(fields[1], &ppid) || !absl::SimpleAtoi(fields[kStartTimeIndex], &start)) {
    return absl::InternalError("/proc/PID/stat: ppid or starttime is not a number");
  }
  info->state = fields[0][0];
  info->ppid = static_cast<pid_t>(ppid);
  info->start_time = start;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pid_t>> ParseProcStatusNsPid(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "NSpid:")) continue;
    std::vector<pid_t> pids;
    for (absl::string_view field :
         absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty())) {
      int64_t pid = 0;
      if (!absl::SimpleAtoi(field, &pid) || pid <= 0) {
        return absl::InternalError(absl::StrCat("/proc/PID/status: bad NSpid field '", field, "'"));
      }
      pids.push_back(static_cast<pid_t>(pid));
    }
    if (pids.empty()) return absl::InternalError("/proc/PID/status: empty NSpid line");
    return pids;
  }
  return absl::InternalError("/proc/PID/status: no NSpid line (kernel older than 4.1?)");
}

std::vector<std::string> ParseProcCmdline(absl::string_view text) {
  std::vector<std::string> args;
  if (text.empty()) return args;
  if (text.back() == '\0') text.remove_suffix(1);
  for (absl::string_view arg : absl::StrSplit(text, '\0')) args.emplace_back(arg);
  return args;
}

absl::StatusOr<ProcessInfo> ReadProcess(const std::string& proc_root, pid_t pid) {
  ProcessInfo info;
  info.pid = pid;
  absl::StatusOr<std::string> stat = ReadProcFile(PidPath(proc_root, pid, "stat"));
  if (!stat.ok()) return stat.status();
  if (absl::Status parsed = ParseProcStat(*stat, &info); !parsed.ok()) {
    return absl::InternalError(absl::StrCat("pid ", pid, ": ", parsed.message()));
  }
  absl::StatusOr<std::string> status = ReadProcFile(PidPath(proc_root, pid, "status"));
  if (!status.ok()) return status.status();
  absl::StatusOr<std::vector<pid_t>> nspid = ParseProcStatusNsPid(*status);
  if (!nspid.ok()) {
    return absl::InternalError(absl::StrCat("pid ", pid, ": ", nspid.status().message()));
  }
  info.nspid = *std::move(nspid);
  absl::StatusOr<std::string> cmdline = ReadProcFile(PidPath(proc_root, pid, "cmdline"));
  if (!cmdline.ok()) return cmdline.status();
  info.cmdline = ParseProcCmdline(*cmdline);
  return info;
}

absl::StatusOr<std::vector<pid_t>> ListPids(const std::string& proc_root) {
  std::vector<pid_t> pids;
  std::error_code ec;
  std::filesystem::directory_iterator it(proc_root, ec);
  if (ec) return absl::InternalError(absl::StrCat(proc_root, ": ", ec.message()));
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return absl::InternalError(absl::StrCat(proc_root, ": ", ec.message()));
    int64_t pid = 0;
    if (absl::SimpleAtoi(it->path().filename().string(), &pid) && pid > 0) {
      pids.push_back(static_cast<pid_t>(pid));
    }
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

absl::StatusOr<uint64_t> NamespaceInode(const std::string& proc_root, pid_t pid,
                                        absl::string_view kind) {
  const std::string path = PidPath(proc_root, pid, absl::StrCat("ns/", kind));
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ESRCH) return absl::NotFoundError(absl::StrCat(path, ": gone"));
    return absl::InternalError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  return static_cast<uint64_t>(st.st_ino);
}

bool IsSameProcess(const std::string& proc_root, pid_t pid, uint64_t start_time,
                   absl::string_view argv0) {
  if (pid <= 1) return false;
  absl::StatusOr<ProcessInfo> info = ReadProcess(proc_root, pid);
  if (!info.ok() || info->state == 'Z' || info->start_time != start_time) return false;
  return !info->cmdline.empty() && info->cmdline[0] == argv0;
}

}  // namespace jailover::agent::linux_driver
