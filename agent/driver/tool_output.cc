#include "agent/driver/tool_output.h"

#include <errno.h>
#include <sys/stat.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace jailover::agent {
namespace {

// Bytes of a tool's output quoted in an error message.
constexpr size_t kMaxQuoted = 500;

}  // namespace

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(absl::StripAsciiWhitespace(text), {{"\n", "; "}});
}

std::string DescribeFailure(const common::CommandResult& result) {
  std::string out = result.exit_code >= 0 ? absl::StrCat("exit ", result.exit_code)
                                          : absl::StrCat("signal ", result.term_signal);
  const std::string err = OneLine(result.stderr_text);
  if (!err.empty()) absl::StrAppend(&out, ": ", err);
  return out;
}

std::string DescribeToolFailure(const common::CommandResult& result, bool syslog_hint) {
  std::string head;
  if (result.exit_code >= 0) {
    head = absl::StrCat("exit ", result.exit_code);
  } else if (result.term_signal != 0) {
    head = absl::StrCat("killed by signal ", result.term_signal);
  } else {
    head = "abnormal exit";
  }
  absl::string_view said = absl::StripAsciiWhitespace(result.stderr_text);
  if (said.empty()) said = absl::StripAsciiWhitespace(result.stdout_text);
  if (said.empty()) {
    return absl::StrCat(head, syslog_hint ? ", no output; see syslog" : ", no output");
  }
  const bool cut = said.size() > kMaxQuoted;
  if (cut) said = said.substr(0, kMaxQuoted);
  return absl::StrCat(head, ": ", said, cut ? "..." : "");
}

void AppendCapped(std::string* out, absl::string_view text, size_t cap) {
  if (out->size() >= cap) return;
  if (out->size() + text.size() > cap) {
    absl::StrAppend(out, text.substr(0, cap - out->size()), "\n[output truncated]\n");
  } else {
    absl::StrAppend(out, text);
  }
}

void AppendTranscript(std::string* out, const std::vector<std::string>& argv,
                      const common::CommandResult& result, size_t cap) {
  std::string chunk = absl::StrCat("$ ", common::FormatArgv(argv), "\n", result.stdout_text,
                                   result.stderr_text);
  if (chunk.back() != '\n') chunk.push_back('\n');
  absl::StrAppend(&chunk, "[",
                  result.exit_code >= 0 ? absl::StrCat("exit ", result.exit_code)
                                        : absl::StrCat("killed by signal ", result.term_signal),
                  "]\n");
  AppendCapped(out, chunk, cap);
}

absl::Status MakePrivateDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace jailover::agent
