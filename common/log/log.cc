#include "common/log/log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/status/check.h"

namespace jailover::common {
namespace {

// RFC 3339 in UTC with microseconds, as in the JSON `ts` field; the text
// pattern below prints the same shape.
constexpr char kTimeFormat[] = "%Y-%m-%dT%H:%M:%E6SZ";
constexpr char kTextPattern[] = "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ [%n] %v";

absl::string_view ToAbsl(spdlog::string_view_t s) {
  return absl::string_view(s.data(), s.size());
}

// The level names LogOptions accepts; exactly these, no abbreviations.
std::optional<spdlog::level::level_enum> ParseLevel(absl::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return std::nullopt;
}

// Writes each record as FormatJsonLogLine(...) and a newline.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string line =
        FormatJsonLogLine(ToAbsl(msg.logger_name), ToAbsl(spdlog::level::to_string_view(msg.level)),
                          ToAbsl(msg.payload), absl::FromChrono(msg.time));
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// Writes all of `text` to stderr with write(2): no locks, no allocation, so
// it works however broken the process is.
void WriteToStderr(absl::string_view text) {
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

absl::Status InitLogging(absl::string_view name, const LogOptions& options) {
  const std::optional<spdlog::level::level_enum> level = ParseLevel(options.level);
  if (!level.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log level \"", options.level,
        "\": must be one of trace, debug, info, warn, error, critical, off"));
  }
  std::unique_ptr<spdlog::formatter> formatter;
  if (options.format == "text") {
    formatter = std::make_unique<spdlog::pattern_formatter>(kTextPattern,
                                                            spdlog::pattern_time_type::utc);
  } else if (options.format == "json") {
    formatter = std::make_unique<JsonFormatter>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("log format \"", options.format, "\": must be text or json"));
  }
  try {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    auto logger = std::make_shared<spdlog::logger>(std::string(name), std::move(sink));
    logger->set_formatter(std::move(formatter));
    logger->set_level(*level);
    spdlog::set_default_logger(std::move(logger));
  } catch (const spdlog::spdlog_ex& e) {
    return absl::InternalError(absl::StrCat("logger ", name, ": ", e.what()));
  }
  return absl::OkStatus();
}

std::string FormatJsonLogLine(absl::string_view logger, absl::string_view level,
                              absl::string_view message, absl::Time time) {
  // ordered_json keeps the fields in this order, which reads best in a tail.
  nlohmann::ordered_json record;
  record["ts"] = absl::FormatTime(kTimeFormat, time, absl::UTCTimeZone());
  record["level"] = std::string(level);
  record["logger"] = std::string(logger);
  record["msg"] = std::string(message);
  // Bytes that are not UTF-8 become U+FFFD instead of an exception.
  return record.dump(-1, ' ', /*ensure_ascii=*/false,
                     nlohmann::ordered_json::error_handler_t::replace);
}

namespace internal {

void CheckFailed(const char* file, int line, const char* condition) {
  const std::string text = absl::StrCat("CHECK failed: ", file, ":", line, ": ", condition);
  try {
    if (spdlog::logger* logger = spdlog::default_logger_raw(); logger != nullptr) {
      logger->log(spdlog::level::critical, spdlog::string_view_t(text.data(), text.size()));
      logger->flush();
    }
  } catch (...) {
    // About to abort; the write below still reports the failure.
  }
  WriteToStderr(absl::StrCat(text, "\n"));
  std::abort();
}

}  // namespace internal
}  // namespace jailover::common
