#include "common/log/log.h"

#include <stdlib.h>
#include <time.h>

#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status/check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::common {
namespace {

using ::testing::HasSubstr;

const std::regex kTsRegex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)");

absl::Time At(int year, int month, int day, int hour, int minute, int second,
              int64_t micros) {
  return absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                         absl::UTCTimeZone()) +
         absl::Microseconds(micros);
}

// Lines of captured output, without the empty string after the last '\n'.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// Sets TZ for the scope of the object, so "UTC" can be told from local time.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* tz) {
    if (const char* old = getenv("TZ"); old != nullptr) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTimeZone() {
    if (old_.has_value()) {
      setenv("TZ", old_->c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }

 private:
  std::optional<std::string> old_;
};

TEST(FormatJsonLogLineTest, ExactLayout) {
  EXPECT_EQ(FormatJsonLogLine("agent", "info", "jail web01: started",
                              At(2026, 11, 28, 15, 16, 45, 123456)),
            R"({"ts":"2026-11-28T15:16:45.123456Z","level":"info","logger":"agent",)"
            R"("msg":"jail web01: started"})");
}

TEST(FormatJsonLogLineTest, TimestampIsUtcWithSixDigitMicroseconds) {
  const std::vector<std::pair<absl::Time, std::string>> cases = {
      {At(2026, 1, 2, 3, 4, 5, 6), "2026-01-02T03:04:05.000006Z"},
      {At(1999, 12, 31, 23, 59, 59, 999999), "1999-12-31T23:59:59.999999Z"},
      {At(2030, 6, 1, 0, 0, 0, 0), "2030-06-01T00:00:00.000000Z"},
      // Sub-microsecond parts are cut, never rounded up into the next second.
      {At(2030, 6, 1, 0, 0, 0, 999999) + absl::Nanoseconds(999),
       "2030-06-01T00:00:00.999999Z"},
  };
  for (const auto& [time, want] : cases) {
    const nlohmann::json j = nlohmann::json::parse(FormatJsonLogLine("a", "info", "m", time));
    EXPECT_EQ(j.at("ts"), want);
  }
  const nlohmann::json now = nlohmann::json::parse(FormatJsonLogLine("a", "info", "m", absl::Now()));
  EXPECT_TRUE(std::regex_match(now.at("ts").get<std::string>(), kTsRegex)) << now.at("ts");
}

TEST(FormatJsonLogLineTest, MessageRoundTripsThroughAJsonParser) {
  const std::vector<std::string> messages = {
      "",
      "say \"hello\"",
      R"(C:\path\with\backslashes)",
      "two\nlines",
      "cr\rlf\r\n",
      "tab\there",
      std::string("bell\x07 esc\x1b del\x7f", 14),
      std::string("nul\0inside", 10),
      "unicode: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82",  // café € 🙂
      "braces {} and {0} are not format strings",
      "</script><!-- html -->",
  };
  for (const std::string& message : messages) {
    const std::string line = FormatJsonLogLine("coordinator", "warning", message,
                                               At(2026, 11, 28, 15, 16, 45, 1));
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    EXPECT_EQ(line.find('\r'), std::string::npos) << line;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;
    ASSERT_TRUE(j.is_object());
    EXPECT_EQ(j.size(), 4u);
    EXPECT_EQ(j.at("msg").get<std::string>(), message) << line;
    EXPECT_EQ(j.at("level"), "warning");
    EXPECT_EQ(j.at("logger"), "coordinator");
    EXPECT_EQ(j.at("ts"), "2026-11-28T15:16:45.000001Z");
  }
}

TEST(FormatJsonLogLineTest, ControlCharactersUseShortOrUnicodeEscapes) {
  const std::string line =
      FormatJsonLogLine("a", "info", std::string("q\" b\\ n\n x\x01 y\x1f", 15), absl::UnixEpoch());
  EXPECT_THAT(line, HasSubstr(R"(q\" b\\ n\n x\u0001 y\u001f)"));
}

TEST(FormatJsonLogLineTest, InvalidUtf8IsReplacedNotThrown) {
  std::string line;
  ASSERT_NO_THROW(line = FormatJsonLogLine("a", "info", "bad \xff\xfe byte", absl::UnixEpoch()));
  const nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j.at("msg").get<std::string>(), "bad \xef\xbf\xbd\xef\xbf\xbd byte");
}

TEST(FormatJsonLogLineTest, LoggerAndLevelAreEscapedToo) {
  const nlohmann::json j =
      nlohmann::json::parse(FormatJsonLogLine("we\"ird", "in\nfo", "m", absl::UnixEpoch()));
  EXPECT_EQ(j.at("logger"), "we\"ird");
  EXPECT_EQ(j.at("level"), "in\nfo");
}

TEST(InitLoggingTest, RejectsUnknownLevelAndChangesNothing) {
  ASSERT_TRUE(InitLogging("before", LogOptions{"warn", "text"}).ok());
  for (const char* level : {"", "verbose", "INFO", "warning", "err", "info "}) {
    const absl::Status s = InitLogging("after", LogOptions{level, "text"});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << level;
    EXPECT_THAT(s.message(), HasSubstr("log level")) << level;
  }
  EXPECT_EQ(spdlog::default_logger()->name(), "before");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
}

TEST(InitLoggingTest, RejectsUnknownFormatAndChangesNothing) {
  ASSERT_TRUE(InitLogging("before", LogOptions{"info", "json"}).ok());
  for (const char* format : {"", "JSON", "logfmt", "text "}) {
    const absl::Status s = InitLogging("after", LogOptions{"debug", format});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << format;
    EXPECT_THAT(s.message(), HasSubstr("log format")) << format;
  }
  EXPECT_EQ(spdlog::default_logger()->name(), "before");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
}

TEST(InitLoggingTest, EveryDocumentedLevelIsAccepted) {
  const std::vector<std::pair<std::string, spdlog::level::level_enum>> levels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  };
  for (const auto& [name, level] : levels) {
    ASSERT_TRUE(InitLogging("agent", LogOptions{name, "text"}).ok()) << name;
    EXPECT_EQ(spdlog::default_logger()->level(), level) << name;
    EXPECT_EQ(spdlog::default_logger()->name(), "agent");
  }
}

TEST(InitLoggingTest, CanBeCalledAgainWithTheSameName) {
  ASSERT_TRUE(InitLogging("jailoverctl", LogOptions{}).ok());
  ASSERT_TRUE(InitLogging("jailoverctl", LogOptions{"debug", "json"}).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  EXPECT_EQ(spdlog::get("jailoverctl"), spdlog::default_logger());
}

TEST(InitLoggingTest, JsonLinesOnStderr) {
  ASSERT_TRUE(InitLogging("agent", LogOptions{"info", "json"}).ok());
  ::testing::internal::CaptureStderr();
  spdlog::debug("dropped below the level");
  spdlog::info("jail {}: \"started\"\nsecond line", "web01");
  spdlog::warn("peer {} down", "h2");
  const std::string out = ::testing::internal::GetCapturedStderr();
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 2u) << out;

  const nlohmann::json first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first.at("msg"), "jail web01: \"started\"\nsecond line");
  EXPECT_EQ(first.at("level"), "info");
  EXPECT_EQ(first.at("logger"), "agent");
  EXPECT_TRUE(std::regex_match(first.at("ts").get<std::string>(), kTsRegex)) << lines[0];
  const absl::Time ts = [&] {
    absl::Time t;
    std::string err;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, first.at("ts").get<std::string>(), &t, &err))
        << err;
    return t;
  }();
  EXPECT_LT(absl::AbsDuration(absl::Now() - ts), absl::Minutes(1));

  const nlohmann::json second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second.at("level"), "warning");
  EXPECT_EQ(second.at("msg"), "peer h2 down");
}

TEST(InitLoggingTest, TextLinesOnStderrInUtc) {
  // Fourteen hours east of UTC: a local-time stamp would be far from now.
  ScopedTimeZone tz("XXX-14");
  ASSERT_TRUE(InitLogging("coordinator", LogOptions{"debug", "text"}).ok());
  ::testing::internal::CaptureStderr();
  spdlog::trace("dropped");
  spdlog::debug("epoch {} for {}", 7, "vip1");
  spdlog::error("failover of web01 abandoned");
  const std::string out = ::testing::internal::GetCapturedStderr();
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 2u) << out;

  const std::regex line_regex(
      R"(^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (\w+) \[coordinator\] (.*)$)");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[0], m, line_regex)) << lines[0];
  EXPECT_EQ(m[2], "debug");
  EXPECT_EQ(m[3], "epoch 7 for vip1");
  absl::Time ts;
  std::string err;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, m[1].str(), &ts, &err)) << err;
  EXPECT_LT(absl::AbsDuration(absl::Now() - ts), absl::Minutes(1)) << lines[0];

  ASSERT_TRUE(std::regex_match(lines[1], m, line_regex)) << lines[1];
  EXPECT_EQ(m[2], "error");
  EXPECT_EQ(m[3], "failover of web01 abandoned");
}

TEST(CheckTest, PassingCheckDoesNothing) {
  int evaluated = 0;
  JAILOVER_CHECK(++evaluated == 1);
  EXPECT_EQ(evaluated, 1);  // evaluated exactly once
}

TEST(CheckDeathTest, FailingCheckPrintsConditionFileAndLineAndAborts) {
  EXPECT_DEATH(JAILOVER_CHECK(1 + 1 == 3),
               R"(CHECK failed: .*log_test\.cc:[0-9]+: 1 \+ 1 == 3)");
}

TEST(CheckDeathTest, FailingCheckGoesThroughTheJsonLogger) {
  EXPECT_DEATH(
      {
        InitLogging("agent", LogOptions{"info", "json"}).IgnoreError();
        const int jails = 0;
        JAILOVER_CHECK(jails > 0);
      },
      R"("level":"critical","logger":"agent","msg":"CHECK failed: .*log_test\.cc:[0-9]+: jails > 0")");
}

TEST(CheckDeathTest, FailingCheckWithoutDefaultLoggerStillPrints) {
  EXPECT_DEATH(
      {
        spdlog::set_default_logger(nullptr);
        JAILOVER_CHECK(false && "no logger");
      },
      R"(CHECK failed: .*: false && "no logger")");
}

}  // namespace
}  // namespace jailover::common
