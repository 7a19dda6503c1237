// The append-log service's parts: the protocol parser, record validation
// (with and without a writer tag), the address parser, the tail repair of a
// partial last line, the log file (append, fsync'd records, read back, no
// interleaving, writer tags), the writer tag from the environment and the
// writer-order check, and the client's acked-file parser and gap finder.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tools/applog/acked.h"
#include "tools/applog/log_file.h"
#include "tools/applog/protocol.h"
#include "tools/applog/writers.h"

namespace jailover::applog {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

TEST(ParseIdTest, AcceptsOneToTwentyDigitsThatFit) {
  EXPECT_EQ(ParseId("1"), 1u);
  EXPECT_EQ(ParseId("007"), 7u);
  EXPECT_EQ(ParseId("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(ParseId(""), std::nullopt);
  EXPECT_EQ(ParseId("18446744073709551616"), std::nullopt);   // 2^64
  EXPECT_EQ(ParseId("000000000000000000001"), std::nullopt);  // 21 digits
  EXPECT_EQ(ParseId("-1"), std::nullopt);
  EXPECT_EQ(ParseId("+1"), std::nullopt);
  EXPECT_EQ(ParseId("1a"), std::nullopt);
  EXPECT_EQ(ParseId(" 1"), std::nullopt);
}

TEST(ValidPayloadTest, PrintableAsciiUpToAThousandBytes) {
  EXPECT_TRUE(ValidPayload("x"));
  EXPECT_TRUE(ValidPayload("hello world ~!"));
  EXPECT_TRUE(ValidPayload(std::string(kMaxPayload, 'a')));
  EXPECT_FALSE(ValidPayload(""));
  EXPECT_FALSE(ValidPayload(std::string(kMaxPayload + 1, 'a')));
  EXPECT_FALSE(ValidPayload("tab\there"));
  EXPECT_FALSE(ValidPayload("new\nline"));
  EXPECT_FALSE(ValidPayload("del\x7f"));
  EXPECT_FALSE(ValidPayload("caf\xc3\xa9"));  // UTF-8 is not ASCII
}

TEST(ParseRequestTest, Commands) {
  std::string error;
  std::optional<Request> ping = ParseRequest("PING", &error);
  ASSERT_TRUE(ping.has_value()) << error;
  EXPECT_EQ(ping->kind, Request::Kind::kPing);
  std::optional<Request> read = ParseRequest("READ\r", &error);  // nc -C
  ASSERT_TRUE(read.has_value()) << error;
  EXPECT_EQ(read->kind, Request::Kind::kRead);
  std::optional<Request> append = ParseRequest("APPEND 42 hello  world ", &error);
  ASSERT_TRUE(append.has_value()) << error;
  EXPECT_EQ(append->kind, Request::Kind::kAppend);
  EXPECT_EQ(append->id, 42u);
  EXPECT_EQ(append->payload, "hello  world ");  // spaces inside the payload kept
}

TEST(ParseRequestTest, MalformedLinesGetAReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unknown command"},
      {"ping", "unknown command"},
      {"PING extra", "unknown command"},
      {"APPENDX 1 a", "unknown command"},
      {"APPEND", "needs an id and a payload"},
      {"APPEND ", "needs an id and a payload"},
      {"APPEND 1", "needs an id and a payload"},
      {"APPEND 1 ", "bad payload"},
      {"APPEND x1 a", "bad id"},
      {"APPEND  1 a", "bad id"},
      {"APPEND 123456789012345678901 a", "bad id"},
      {"APPEND 1 a\tb", "bad payload"},
      {"APPEND 1 " + std::string(kMaxPayload + 1, 'p'), "bad payload"},
      {"APPEND 1 " + std::string(kMaxLine, 'p'), "line too long"},
  };
  for (const auto& [line, reason] : cases) {
    std::string error;
    EXPECT_EQ(ParseRequest(line, &error), std::nullopt) << line;
    EXPECT_THAT(error, HasSubstr(reason)) << line;
  }
}

TEST(RecordTest, FormatAndParseRoundTrip) {
  EXPECT_EQ(FormatRecord(7, "seven days"), "7 seven days\n");
  std::optional<Record> record = ParseRecord("7 seven days");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->id, 7u);
  EXPECT_EQ(record->payload, "seven days");
  EXPECT_EQ(ParseRecord("7"), std::nullopt);
  EXPECT_EQ(ParseRecord("7 "), std::nullopt);
  EXPECT_EQ(ParseRecord("x y"), std::nullopt);
  EXPECT_EQ(ParseRecord("END 3").has_value(), false);
}

TEST(ValidWriterTagTest, OneToSixtyFourPrintableAsciiWithoutSpaces) {
  EXPECT_TRUE(ValidWriterTag("h1@2"));
  EXPECT_TRUE(ValidWriterTag("x"));
  EXPECT_TRUE(ValidWriterTag("~!#$%&'()*+,-./:;<=>?[]^_`{|}"));
  EXPECT_TRUE(ValidWriterTag(std::string(kMaxWriterTag, 'w')));
  EXPECT_FALSE(ValidWriterTag(""));
  EXPECT_FALSE(ValidWriterTag(std::string(kMaxWriterTag + 1, 'w')));
  EXPECT_FALSE(ValidWriterTag("h1 @2"));
  EXPECT_FALSE(ValidWriterTag("h1\t@2"));
  EXPECT_FALSE(ValidWriterTag("h1\n"));
  EXPECT_FALSE(ValidWriterTag("del\x7f"));
  EXPECT_FALSE(ValidWriterTag("h\xc3\xa9"));
}

TEST(RecordTest, WriterTagAfterATab) {
  EXPECT_EQ(FormatRecord(7, "seven days", "h1@2"), "7 seven days\th1@2\n");
  EXPECT_EQ(FormatRecord(7, "seven days", ""), "7 seven days\n");
  std::optional<Record> record = ParseRecord("7 seven days\th1@2");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->id, 7u);
  EXPECT_EQ(record->payload, "seven days");
  EXPECT_EQ(record->writer, "h1@2");
  record = ParseRecord("8 eight");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->writer, "");
  // Any valid tag is a record; whether it is HOST@EPOCH is the checker's business.
  record = ParseRecord("9 a b\tblue");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->payload, "a b");
  EXPECT_EQ(record->writer, "blue");

  EXPECT_EQ(ParseRecord("7 seven\t"), std::nullopt);         // empty tag
  EXPECT_EQ(ParseRecord("7 \th1@2"), std::nullopt);          // empty payload
  EXPECT_EQ(ParseRecord("7\th1@2"), std::nullopt);           // no payload at all
  EXPECT_EQ(ParseRecord("7 seven\th1 @2"), std::nullopt);    // space in the tag
  EXPECT_EQ(ParseRecord("7 seven\th1@2\tx"), std::nullopt);  // two tabs
  EXPECT_EQ(ParseRecord("7 seven\t" + std::string(kMaxWriterTag + 1, 'w')), std::nullopt);
  EXPECT_EQ(ParseRecord("x seven\th1@2"), std::nullopt);
}

TEST(ParseAddressTest, Ipv4AndPort) {
  std::string error;
  std::optional<sockaddr_in> addr = ParseAddress("127.0.0.1:7000", false, &error);
  ASSERT_TRUE(addr.has_value()) << error;
  EXPECT_EQ(ntohs(addr->sin_port), 7000);
  EXPECT_EQ(ntohl(addr->sin_addr.s_addr), 0x7f000001u);
  EXPECT_TRUE(ParseAddress("0.0.0.0:0", true, &error).has_value()) << error;

  EXPECT_EQ(ParseAddress("0.0.0.0:0", false, &error), std::nullopt);
  EXPECT_THAT(error, HasSubstr("not a port"));
  EXPECT_EQ(ParseAddress("localhost:7000", false, &error), std::nullopt);
  EXPECT_THAT(error, HasSubstr("not an IPv4 address"));
  EXPECT_EQ(ParseAddress("127.0.0.1", false, &error), std::nullopt);
  EXPECT_THAT(error, HasSubstr("not ADDR:PORT"));
  EXPECT_EQ(ParseAddress("127.0.0.1:65536", false, &error), std::nullopt);
  EXPECT_EQ(ParseAddress("127.0.0.1:-1", false, &error), std::nullopt);
  EXPECT_EQ(ParseAddress("127.0.0.1:", false, &error), std::nullopt);
}

class RepairTailTest : public ::testing::Test {
 protected:
  // RepairTail on a file holding `text`; returns the file's contents after.
  std::string Repair(const std::string& text, TailRepair* repair) {
    const std::string path = dir_.path() + "/log";
    WriteFile(path, text);
    const int fd = ::open(path.c_str(), O_RDWR | O_APPEND);
    EXPECT_GE(fd, 0);
    std::string error;
    std::optional<TailRepair> repaired = RepairTail(fd, &error);
    ::close(fd);
    EXPECT_TRUE(repaired.has_value()) << error;
    if (repaired.has_value()) *repair = *repaired;
    return ReadFile(path);
  }

  testing::ScopedTempDir dir_{"applog_test"};
};

TEST_F(RepairTailTest, CompleteFilesAreLeftAlone) {
  TailRepair repair;
  EXPECT_EQ(Repair("", &repair), "");
  EXPECT_EQ(repair.cut, 0);
  EXPECT_EQ(Repair("1 a\n2 b\n", &repair), "1 a\n2 b\n");
  EXPECT_EQ(repair.cut, 0);
  EXPECT_EQ(repair.size_before, 8);
}

TEST_F(RepairTailTest, CutsAPartialLastLine) {
  TailRepair repair;
  EXPECT_EQ(Repair("1 a\n2 b\n3 partia", &repair), "1 a\n2 b\n");
  EXPECT_EQ(repair.cut, 8);
  EXPECT_EQ(repair.size_before, 16);
  EXPECT_EQ(Repair("1 only partial", &repair), "");
  EXPECT_EQ(repair.cut, 14);
}

TEST_F(RepairTailTest, TaggedAndUntaggedLines) {
  TailRepair repair;
  const std::string complete = "1 a\n2 b\th1@1\n3 c\th2@2\n";
  EXPECT_EQ(Repair(complete, &repair), complete);
  EXPECT_EQ(repair.cut, 0);
  // Cut inside the tag, right after the tab, and before it.
  EXPECT_EQ(Repair(complete + "4 d\th2@", &repair), complete);
  EXPECT_EQ(repair.cut, 7);
  EXPECT_EQ(Repair(complete + "4 d\t", &repair), complete);
  EXPECT_EQ(repair.cut, 4);
  EXPECT_EQ(Repair(complete + "4 d", &repair), complete);
  EXPECT_EQ(repair.cut, 3);
}

TEST_F(RepairTailTest, PartialLineLongerThanOneReadChunk) {
  // The backward scan reads 4 KiB at a time; the '\n' is two chunks back.
  const std::string head = "1 " + std::string(1000, 'h') + "\n";
  TailRepair repair;
  EXPECT_EQ(Repair(head + std::string(9000, 'x'), &repair), head);
  EXPECT_EQ(repair.cut, 9000);
}

TEST_F(RepairTailTest, RefusesADirectory) {
  const int fd = ::open(dir_.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  std::string error;
  EXPECT_EQ(RepairTail(fd, &error), std::nullopt);
  ::close(fd);
  EXPECT_THAT(error, HasSubstr("not a regular file"));
}

TEST(LogFileTest, AppendsReadsBackAndRepairsAtOpen) {
  testing::ScopedTempDir dir("applog_test");
  const std::string path = dir.path() + "/applog.txt";
  std::string error;
  TailRepair repair;
  {
    std::unique_ptr<LogFile> log = LogFile::Open(path, "", &repair, &error);
    ASSERT_NE(log, nullptr) << error;
    EXPECT_EQ(repair.cut, 0);
    ASSERT_TRUE(log->Append(1, "one", &error)) << error;
    ASSERT_TRUE(log->Append(2, "two", &error)) << error;
    std::string records;
    uint64_t count = 0;
    ASSERT_TRUE(log->ReadAll(&records, &count, &error)) << error;
    EXPECT_EQ(records, "1 one\n2 two\n");
    EXPECT_EQ(count, 2u);
  }
  // A crash in the middle of the third append.
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << "3 thr";
  }
  std::unique_ptr<LogFile> log = LogFile::Open(path, "", &repair, &error);
  ASSERT_NE(log, nullptr) << error;
  EXPECT_EQ(repair.cut, 5);
  ASSERT_TRUE(log->Append(3, "three", &error)) << error;
  EXPECT_EQ(ReadFile(path), "1 one\n2 two\n3 three\n");
}

TEST(LogFileTest, OpenFailsClearlyWithoutTheDirectory) {
  testing::ScopedTempDir dir("applog_test");
  std::string error;
  TailRepair repair;
  EXPECT_EQ(LogFile::Open(dir.path() + "/missing/applog.txt", "", &repair, &error), nullptr);
  EXPECT_THAT(error, HasSubstr("missing/applog.txt: open: No such file or directory"));
}

TEST(LogFileTest, TagsRecordsWithItsWriter) {
  testing::ScopedTempDir dir("applog_test");
  const std::string path = dir.path() + "/applog.txt";
  std::string error;
  TailRepair repair;
  {
    // An old, untagged server first.
    std::unique_ptr<LogFile> log = LogFile::Open(path, "", &repair, &error);
    ASSERT_NE(log, nullptr) << error;
    ASSERT_TRUE(log->Append(1, "one", &error)) << error;
  }
  {
    std::unique_ptr<LogFile> log = LogFile::Open(path, "h1@1", &repair, &error);
    ASSERT_NE(log, nullptr) << error;
    EXPECT_EQ(log->writer(), "h1@1");
    ASSERT_TRUE(log->Append(2, "two", &error)) << error;
  }
  // A crash in the middle of the next append, after the tab.
  { std::ofstream(path, std::ios::app | std::ios::binary) << "3 three\th1"; }
  std::unique_ptr<LogFile> log = LogFile::Open(path, "h2@2", &repair, &error);
  ASSERT_NE(log, nullptr) << error;
  EXPECT_EQ(repair.cut, 10);
  ASSERT_TRUE(log->Append(3, "three", &error)) << error;
  std::string records;
  uint64_t count = 0;
  ASSERT_TRUE(log->ReadAll(&records, &count, &error)) << error;
  EXPECT_EQ(records, "1 one\n2 two\th1@1\n3 three\th2@2\n");
  EXPECT_EQ(count, 3u);

  EXPECT_EQ(LogFile::Open(path, "h1 @1", &repair, &error), nullptr);
  EXPECT_THAT(error, HasSubstr("is not a writer tag"));
}

TEST(LogFileTest, ConcurrentAppendsNeverInterleave) {
  testing::ScopedTempDir dir("applog_test");
  const std::string path = dir.path() + "/applog.txt";
  std::string error;
  TailRepair repair;
  std::unique_ptr<LogFile> log = LogFile::Open(path, "h1@1", &repair, &error);
  ASSERT_NE(log, nullptr) << error;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string append_error;
        const uint64_t id = static_cast<uint64_t>(t * kPerThread + i + 1);
        EXPECT_TRUE(log->Append(id, std::string(500, static_cast<char>('a' + t)), &append_error))
            << append_error;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::istringstream lines(ReadFile(path));
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    std::optional<Record> record = ParseRecord(line);
    ASSERT_TRUE(record.has_value()) << line.substr(0, 40);
    const char owner = static_cast<char>('a' + (record->id - 1) / kPerThread);
    EXPECT_EQ(record->payload, std::string(500, owner)) << "record " << record->id;
    EXPECT_EQ(record->writer, "h1@1") << "record " << record->id;
  }
  EXPECT_EQ(count, kThreads * kPerThread);
}

TEST(WriterTagFromEnvironmentTest, HostAtEpochWhenBothAreSet) {
  std::string why;
  EXPECT_EQ(WriterTagFromEnvironment("h1", "2", &why), "h1@2");
  EXPECT_EQ(WriterTagFromEnvironment("h1", "007", &why), "h1@7");  // the epoch's value
  EXPECT_EQ(WriterTagFromEnvironment("h1", "18446744073709551615", &why),
            "h1@18446744073709551615");
  EXPECT_EQ(why, "");
  // Neither set: untagged, and nothing to complain about.
  EXPECT_EQ(WriterTagFromEnvironment(nullptr, nullptr, &why), std::nullopt);
  EXPECT_EQ(WriterTagFromEnvironment("", "", &why), std::nullopt);
  EXPECT_EQ(why, "");
}

TEST(WriterTagFromEnvironmentTest, UntaggedWithAReasonOtherwise) {
  const std::vector<std::tuple<const char*, const char*, std::string>> cases = {
      {"h1", nullptr, "JAILOVER_HOST is set but JAILOVER_EPOCH is not"},
      {"h1", "", "JAILOVER_HOST is set but JAILOVER_EPOCH is not"},
      {nullptr, "2", "JAILOVER_EPOCH is set but JAILOVER_HOST is not"},
      {"h 1", "2", "JAILOVER_HOST \"h 1\" is not 1 to 64 printable ASCII"},
      {"h1", "x", "JAILOVER_EPOCH \"x\" is not 1 to 20 decimal digits"},
      {"h1", "-1", "is not 1 to 20 decimal digits"},
      {"h1", " 2", "is not 1 to 20 decimal digits"},
      {"h1", "18446744073709551616", "is not 1 to 20 decimal digits"},
      {"h1", "000000000000000000001", "is not 1 to 20 decimal digits"},
  };
  for (const auto& [host, epoch, reason] : cases) {
    std::string why;
    EXPECT_EQ(WriterTagFromEnvironment(host, epoch, &why), std::nullopt) << reason;
    EXPECT_THAT(why, HasSubstr(reason));
  }
  // A valid host that makes the tag too long.
  const std::string host(kMaxWriterTag - 1, 'h');
  std::string why;
  EXPECT_EQ(WriterTagFromEnvironment(host.c_str(), "2", &why), std::nullopt);
  EXPECT_THAT(why, HasSubstr("is longer than 64 characters"));
  EXPECT_EQ(WriterTagFromEnvironment(std::string(kMaxWriterTag - 2, 'h').c_str(), "2", &why),
            std::string(kMaxWriterTag - 2, 'h') + "@2");
}

TEST(ParseFencedWriterTest, HostAtEpoch) {
  std::optional<FencedWriter> writer = ParseFencedWriter("h1@2");
  ASSERT_TRUE(writer.has_value());
  EXPECT_EQ(writer->host, "h1");
  EXPECT_EQ(writer->epoch, 2u);
  writer = ParseFencedWriter("web@h1@30");  // split at the last '@'
  ASSERT_TRUE(writer.has_value());
  EXPECT_EQ(writer->host, "web@h1");
  EXPECT_EQ(writer->epoch, 30u);
  for (const char* tag :
       {"h1", "h1@", "@2", "h1@x", "h1@2x", "h1@-2", "h1@2@", "h1@123456789012345678901"}) {
    EXPECT_EQ(ParseFencedWriter(tag), std::nullopt) << tag;
  }
}

// Records in file order from "<id>:<writer>" ("<id>:" is untagged).
std::vector<Record> Stored(const std::vector<std::string>& lines) {
  std::vector<Record> records;
  for (const std::string& line : lines) {
    const size_t colon = line.find(':');
    records.push_back(Record{std::stoull(line.substr(0, colon)), "p", line.substr(colon + 1)});
  }
  return records;
}

TEST(CheckWriterOrderTest, GoodOrders) {
  WriterOrder order = CheckWriterOrder(Stored({"1:h1@1", "2:h1@1", "3:h1@1", "2:h2@2", "4:h2@2"}));
  EXPECT_EQ(order.violation, std::nullopt);
  EXPECT_EQ(order.Describe(), "writers in order: h1@1 (3 records), h2@2 (2 records)");
  // The jail may come back to a host at a later epoch; epochs may skip.
  order = CheckWriterOrder(Stored({"1:h1@1", "2:h2@2", "3:h1@5", "4:h1@5"}));
  EXPECT_EQ(order.violation, std::nullopt);
  EXPECT_EQ(order.Describe(),
            "writers in order: h1@1 (1 records), h2@2 (1 records), h1@5 (2 records)");
  // Leading zeros do not make another epoch.
  order = CheckWriterOrder(Stored({"1:h1@2", "2:h1@02"}));
  EXPECT_EQ(order.violation, std::nullopt);
  EXPECT_EQ(CheckWriterOrder({}).Describe(), "writers: none tagged");
}

TEST(CheckWriterOrderTest, ADecreasingEpochIsTheFirstViolation) {
  const WriterOrder order = CheckWriterOrder(
      Stored({"700:h1@1", "701:h1@1", "702:h2@2", "703:h2@2", "731:h1@1", "732:h1@1"}));
  ASSERT_TRUE(order.violation.has_value());
  EXPECT_EQ(order.violation->stale.id, 731u);
  EXPECT_EQ(order.violation->newer.id, 702u);  // the newer writer's first record
  EXPECT_FALSE(order.violation->same_epoch);
  EXPECT_EQ(order.Describe(),
            "record 731 by h1@1 stored after record 702 by h2@2: an older writer wrote after "
            "a newer one");
  // The counts still cover every record.
  ASSERT_EQ(order.writers.size(), 2u);
  EXPECT_EQ(order.writers[0].records, 4u);
  EXPECT_EQ(order.writers[1].records, 2u);
}

TEST(CheckWriterOrderTest, TwoHostsInOneEpoch) {
  const WriterOrder order = CheckWriterOrder(Stored({"1:h1@1", "2:h2@2", "3:h2@2", "4:h3@2"}));
  ASSERT_TRUE(order.violation.has_value());
  EXPECT_TRUE(order.violation->same_epoch);
  EXPECT_EQ(order.Describe(),
            "record 4 by h3@2 stored after record 2 by h2@2: two hosts wrote with the same "
            "epoch");
  // Two hosts in the first epoch too.
  EXPECT_EQ(CheckWriterOrder(Stored({"1:h1@1", "2:h2@1"})).Describe(),
            "record 2 by h2@1 stored after record 1 by h1@1: two hosts wrote with the same "
            "epoch");
}

TEST(CheckWriterOrderTest, UntaggedRecordsAreCountedNotOrdered) {
  EXPECT_EQ(CheckWriterOrder(Stored({"1:", "2:", "3:"})).Describe(), "writers: none tagged");
  // An old server's records before, between and after tagged ones; merged by tag.
  const WriterOrder order =
      CheckWriterOrder(Stored({"1:", "2:h1@1", "3:", "4:h2@2", "5:h2@2", "6:"}));
  EXPECT_EQ(order.violation, std::nullopt);
  EXPECT_EQ(order.Describe(),
            "writers in order: untagged (3 records), h1@1 (1 records), h2@2 (2 records)");
}

TEST(CheckWriterOrderTest, TagsNotHostAtEpochAreListedNotOrdered) {
  const WriterOrder order =
      CheckWriterOrder(Stored({"1:h2@2", "2:blue", "3:h1@", "4:@1", "5:h1@x", "6:h2@2", "7:blue"}));
  EXPECT_EQ(order.violation, std::nullopt);
  EXPECT_EQ(order.Describe(),
            "writers in order: h2@2 (2 records), blue (2 records), h1@ (1 records), @1 (1 "
            "records), h1@x (1 records)");
  // Only "HOST@EPOCH" tags are compared with each other.
  EXPECT_EQ(CheckWriterOrder(Stored({"1:h2@2", "2:blue", "3:h1@1"})).Describe(),
            "record 3 by h1@1 stored after record 1 by h2@2: an older writer wrote after a "
            "newer one");
}

TEST(CheckWriterOrderTest, AcknowledgementsAreOrderedTheSameWay) {
  WriterOrder order = CheckWriterOrder(Stored({"1:h1@1", "2:h2@2", "3:h1@1"}),
                                       WriterOrderOf::kAcknowledgements);
  ASSERT_TRUE(order.violation.has_value());
  EXPECT_EQ(order.Describe(),
            "record 3 acknowledged by h1@1 after record 2 acknowledged by h2@2: an older writer "
            "served after a newer one");
  order = CheckWriterOrder(Stored({"1:h2@2", "2:h3@2"}), WriterOrderOf::kAcknowledgements);
  EXPECT_EQ(order.Describe(),
            "record 2 acknowledged by h3@2 after record 1 acknowledged by h2@2: two hosts "
            "served with the same epoch");
  order = CheckWriterOrder(Stored({"1:h1@1", "2:h2@2"}), WriterOrderOf::kAcknowledgements);
  EXPECT_EQ(order.Describe(), "acknowledged by, in order: h1@1 (1 records), h2@2 (1 records)");
  EXPECT_EQ(CheckWriterOrder({}, WriterOrderOf::kAcknowledgements).Describe(),
            "acknowledged by: none named");
}

TEST(AckedTest, FormatAndParse) {
  EXPECT_EQ(FormatAck(Ack{12, 1700000000123, ""}), "12 1700000000123\n");
  EXPECT_EQ(FormatAck(Ack{12, 1700000000123, "h2@2"}), "12 1700000000123 h2@2\n");
  int skipped = -1;
  std::string error;
  std::optional<std::vector<Ack>> acks = ParseAcked("1 1000\n2 1050\n3 1400\n", &skipped, &error);
  ASSERT_TRUE(acks.has_value()) << error;
  EXPECT_EQ(skipped, 0);
  ASSERT_EQ(acks->size(), 3u);
  EXPECT_EQ((*acks)[2].id, 3u);
  EXPECT_EQ((*acks)[2].unix_ms, 1400);
  EXPECT_EQ((*acks)[2].writer, "");
  acks = ParseAcked("", &skipped, &error);
  ASSERT_TRUE(acks.has_value()) << error;
  EXPECT_TRUE(acks->empty());
  // With the writer the acknowledgement named; both forms in one file.
  acks = ParseAcked("1 1000 h1@1\n2 1050\n3 1400 h2@2\n", &skipped, &error);
  ASSERT_TRUE(acks.has_value()) << error;
  ASSERT_EQ(acks->size(), 3u);
  EXPECT_EQ((*acks)[0].writer, "h1@1");
  EXPECT_EQ((*acks)[1].writer, "");
  EXPECT_EQ((*acks)[2].writer, "h2@2");
  EXPECT_EQ((*acks)[2].unix_ms, 1400);
}

TEST(AckedTest, UnfinishedLastLineIsSkipped) {
  int skipped = 0;
  std::string error;
  // "12" could be the start of "123 ..." and must not count as id 12.
  std::optional<std::vector<Ack>> acks = ParseAcked("1 1000\n12", &skipped, &error);
  ASSERT_TRUE(acks.has_value()) << error;
  EXPECT_EQ(skipped, 1);
  ASSERT_EQ(acks->size(), 1u);
  EXPECT_EQ((*acks)[0].id, 1u);
}

TEST(AckedTest, MalformedLinesAreErrors) {
  for (const std::string text : {"1 1000\nx 1\n", "1\n", "1 \n", "1 -5\n", "1 2 h1 @1\n",
                                 "1 2 \n", "\n", "1 x h1@1\n"}) {
    int skipped = 0;
    std::string error;
    EXPECT_EQ(ParseAcked(text, &skipped, &error), std::nullopt) << text;
    EXPECT_THAT(error, HasSubstr("is not \"<id> <unix ms>\" or \"<id> <unix ms> <writer>\""))
        << text;
  }
  int skipped = 0;
  std::string error;
  ParseAcked("1 1000\nbad\n", &skipped, &error);
  EXPECT_THAT(error, HasSubstr("line 2"));
}

TEST(AckedTest, GapsOverAThreshold) {
  const std::vector<Ack> acks = {{1, 1000, ""}, {2, 1100, ""}, {3, 1301, ""}, {4, 1500, ""}, {5, 4500, ""}};
  std::vector<int64_t> gaps;
  std::vector<uint64_t> after;
  for (const Gap& gap : GapsOver(acks, 200)) {
    gaps.push_back(gap.ms());
    after.push_back(gap.after.id);
  }
  EXPECT_THAT(gaps, ElementsAre(201, 3000));
  EXPECT_THAT(after, ElementsAre(3u, 5u));
  EXPECT_TRUE(GapsOver({}, 200).empty());
  EXPECT_TRUE(GapsOver({{1, 5, ""}}, 200).empty());
}

}  // namespace
}  // namespace jailover::applog
