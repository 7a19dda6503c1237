// The lab's sample jail service over 127.0.0.1, with the real binaries: the
// protocol on one connection (malformed lines keep it usable, an overlong
// line closes it), SIGTERM ends the server with 0, and the failover case in
// small: a client writes 200 records while the server is SIGKILLed (leaving
// a partial record, as a crash mid-write can) and restarted on the same
// file; the client retries until every record is acknowledged and `check`
// finds every acknowledged record. And the writer tags: servers tagged
// h1@1, then h2@2 (from the jail agent's environment) on one file pass
// `check`, which lists both in order; h1@1 writing again afterwards fails it.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/exec/command_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"
#include "tools/applog/line_conn.h"
#include "tools/applog/protocol.h"

namespace jailover {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// A child process of this test with stdout and stderr in `log_path`;
// SIGKILLed and reaped when it goes out of scope. Its environment is this
// process's without JAILOVER_HOST and JAILOVER_EPOCH, plus `env` ("NAME=value").
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path,
        const std::vector<std::string>& env = {}) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (char** var = environ; *var != nullptr; ++var) {
      const std::string_view name(*var, std::strcspn(*var, "="));
      if (name != "JAILOVER_HOST" && name != "JAILOVER_EPOCH") envp.push_back(*var);
    }
    for (const std::string& var : env) envp.push_back(const_cast<char*>(var.c_str()));
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execve(args[0], args.data(), envp.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig) { ::kill(pid_, sig); }

  // Waits up to `timeout` for the process to end; its wait status, or -1.
  int Wait(absl::Duration timeout) {
    int status = -1;
    const bool ended =
        testing::WaitUntil([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
    if (!ended) return -1;
    pid_ = 0;
    return status;
  }

 private:
  pid_t pid_ = -1;
};

class AppLogTest : public ::testing::Test {
 protected:
  // Starts the server on `port` (0: any; the port is read from its port
  // file), with `flags` added and `env` in its environment, and waits until
  // it answers PING.
  std::unique_ptr<Child> StartServer(int port = 0, const std::vector<std::string>& flags = {},
                                     const std::vector<std::string>& env = {}) {
    const std::string port_file = dir_.path() + "/port";
    ::unlink(port_file.c_str());
    std::vector<std::string> argv = {JAILOVER_APPLOG_SERVER_BIN,
                                     "--listen",
                                     absl::StrCat("127.0.0.1:", port),
                                     "--file",
                                     log_path_,
                                     "--port-file",
                                     port_file};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto server = std::make_unique<Child>(argv, server_log_, env);
    EXPECT_TRUE(testing::WaitUntil([&] { return (port_ = testing::ReadPortFile(port_file)) > 0; },
                                   absl::Seconds(10)))
        << testing::ReadFileOrEmpty(server_log_);
    EXPECT_TRUE(testing::WaitUntil([&] { return Ping(); }, absl::Seconds(10)));
    return server;
  }

  std::unique_ptr<applog::LineConn> Connect() {
    std::string error;
    const std::optional<sockaddr_in> addr = applog::ParseAddress(Target(), false, &error);
    if (!addr.has_value()) return nullptr;
    return applog::LineConn::Connect(*addr, 2000, &error);
  }

  bool Ping() {
    std::unique_ptr<applog::LineConn> conn = Connect();
    std::string error;
    return conn != nullptr && conn->Send("PING\n", &error) && conn->ReadLine(&error) == "PONG";
  }

  std::string Target() const { return absl::StrCat("127.0.0.1:", port_); }

  common::CommandResult Client(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {JAILOVER_APPLOG_CLIENT_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    common::CommandOptions options;
    options.timeout = absl::Seconds(60);
    absl::StatusOr<common::CommandResult> result = runner_.Run(argv, options);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : common::CommandResult{};
  }

  int AckedLines(const std::string& path) {
    std::ifstream in(path);
    int lines = 0;
    for (std::string line; std::getline(in, line);) lines += !line.empty();
    return lines;
  }

  testing::ScopedTempDir dir_{"applog_itest"};
  const std::string log_path_ = dir_.path() + "/applog.txt";
  const std::string server_log_ = dir_.path() + "/server.log";
  int port_ = 0;
  common::SubprocessCommandRunner runner_;
};

TEST_F(AppLogTest, ProtocolOnOneConnection) {
  std::unique_ptr<Child> server = StartServer();
  std::unique_ptr<applog::LineConn> conn = Connect();
  ASSERT_NE(conn, nullptr);
  std::string error;
  auto ask = [&](const std::string& line) -> std::string {
    if (!conn->Send(line, &error)) return "send failed: " + error;
    return conn->ReadLine(&error).value_or("no answer: " + error);
  };
  EXPECT_EQ(ask("PING\n"), "PONG");
  EXPECT_THAT(ask("HELLO\n"), HasSubstr("ERR unknown command"));
  EXPECT_THAT(ask("APPEND 1\n"), HasSubstr("ERR APPEND needs an id and a payload"));
  EXPECT_THAT(ask("APPEND one two\n"), HasSubstr("ERR bad id"));
  EXPECT_EQ(ask("APPEND 1 first record\n"), "OK 1");
  EXPECT_EQ(ask("APPEND 2 second record\r\n"), "OK 2");
  // Two requests in one segment: both answered, in order.
  ASSERT_TRUE(conn->Send("APPEND 3 third\nPING\n", &error)) << error;
  EXPECT_EQ(conn->ReadLine(&error), "OK 3");
  EXPECT_EQ(conn->ReadLine(&error), "PONG");
  EXPECT_EQ(ask("READ\n"), "1 first record");
  EXPECT_EQ(conn->ReadLine(&error), "2 second record");
  EXPECT_EQ(conn->ReadLine(&error), "3 third");
  EXPECT_EQ(conn->ReadLine(&error), "END 3");
  EXPECT_EQ(testing::ReadFileOrEmpty(log_path_), "1 first record\n2 second record\n3 third\n");

  // An overlong line: ERR, then the server closes the connection.
  EXPECT_THAT(ask("APPEND 4 " + std::string(3000, 'x') + "\n"), HasSubstr("ERR line too long"));
  EXPECT_EQ(conn->ReadLine(&error), std::nullopt);
  EXPECT_THAT(error, HasSubstr("closed"));
  // The server itself is fine, and nothing of the long line was stored.
  EXPECT_TRUE(Ping());
  EXPECT_EQ(testing::ReadFileOrEmpty(log_path_), "1 first record\n2 second record\n3 third\n");
  EXPECT_THAT(testing::ReadFileOrEmpty(server_log_), HasSubstr("closed: line too long"));
}

TEST_F(AppLogTest, SigtermExitsZero) {
  std::unique_ptr<Child> server = StartServer();
  server->Signal(SIGTERM);
  const int status = server->Wait(absl::Seconds(5));
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(testing::ReadFileOrEmpty(server_log_), HasSubstr("stopping on SIGTERM"));
}

TEST_F(AppLogTest, BadArgumentsFailClearly) {
  Child bad_listen({JAILOVER_APPLOG_SERVER_BIN, "--listen", "localhost:7000", "--file", log_path_},
                   server_log_);
  int status = bad_listen.Wait(absl::Seconds(5));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  Child bad_file({JAILOVER_APPLOG_SERVER_BIN, "--listen", "127.0.0.1:0", "--file",
                  dir_.path() + "/no/such/dir/applog.txt"},
                 server_log_);
  status = bad_file.Wait(absl::Seconds(5));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  Child bad_writer({JAILOVER_APPLOG_SERVER_BIN, "--listen", "127.0.0.1:0", "--file", log_path_,
                    "--writer", "h1 @1"},
                   server_log_);
  status = bad_writer.Wait(absl::Seconds(5));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string log = testing::ReadFileOrEmpty(server_log_);
  EXPECT_THAT(log, HasSubstr("--listen: \"localhost\" is not an IPv4 address"));
  EXPECT_THAT(log, HasSubstr("applog.txt: open: No such file or directory"));
  EXPECT_THAT(log, HasSubstr("--writer: \"h1 @1\" is not 1 to 64 printable ASCII characters"));

  const common::CommandResult no_count = Client({"write", "--target", "127.0.0.1:1"});
  EXPECT_EQ(no_count.exit_code, 2);
  EXPECT_THAT(no_count.stderr_text, HasSubstr("exactly one of --count N and --run-until-signal"));
  // A used acked file is refused: its ids would clash with the new run's.
  const std::string acked = dir_.path() + "/acked";
  std::ofstream(acked) << "1 1000\n";
  const common::CommandResult reused =
      Client({"write", "--target", "127.0.0.1:1", "--count", "1", "--acked", acked});
  EXPECT_EQ(reused.exit_code, 1);
  EXPECT_THAT(reused.stderr_text, HasSubstr("already holds acknowledgements"));
  EXPECT_EQ(testing::ReadFileOrEmpty(acked), "1 1000\n");
}

TEST_F(AppLogTest, CheckNamesMissingRecordsAndOutagePrintsGaps) {
  std::unique_ptr<Child> server = StartServer();
  const std::string acked = dir_.path() + "/acked";
  const common::CommandResult wrote =
      Client({"write", "--target", Target(), "--count", "3", "--acked", acked});
  ASSERT_EQ(wrote.exit_code, 0) << wrote.stderr_text;
  EXPECT_THAT(wrote.stdout_text, HasSubstr("acknowledged 3 records, 0 retries"));
  const common::CommandResult good = Client({"check", "--target", Target(), "--acked", acked});
  EXPECT_EQ(good.exit_code, 0) << good.stdout_text << good.stderr_text;
  EXPECT_EQ(good.stdout_text,
            "all 3 acknowledged records present (3 stored)\nwriters: none tagged\n");

  // Acknowledgements the log does not hold: named, exit 1.
  const std::string forged = dir_.path() + "/forged";
  std::ofstream(forged) << "1 1000\n2 1100\n77 1200\n5 4000\n";
  const common::CommandResult bad = Client({"check", "--target", Target(), "--acked", forged});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.stdout_text, "2 of 4 acknowledged records MISSING: 77 5\nwriters: none tagged\n");

  const common::CommandResult outage = Client({"outage", "--acked", forged});
  EXPECT_EQ(outage.exit_code, 0) << outage.stderr_text;
  EXPECT_EQ(outage.stdout_text,
            "gap of 2800 ms between acks of records 77 and 5 (ended at 4000)\n");
}

// A READ cut midway (the VIP moved under it, a reset) says nothing about the
// log: check reads again, and judges the complete READ. The stand-in server
// sends one record and resets the first connection, then serves both.
TEST_F(AppLogTest, CheckReadsAgainWhenAReadIsCutMidway) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t length = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length), 0);
  port_ = ntohs(addr.sin_port);
  std::thread server([listener] {
    for (int connection = 0; connection < 2; ++connection) {
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) return;
      char request[16] = {};
      (void)::recv(fd, request, sizeof(request) - 1, 0);      // "READ\n"
      std::string answer = applog::FormatRecord(1, "first");  // Lines end with '\n'.
      if (connection == 1) absl::StrAppend(&answer, applog::FormatRecord(2, "second"), "END 2\n");
      (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      if (connection == 0) {
        linger reset = {1, 0};  // close with a RST, as a moved address does
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
      }
      ::close(fd);
    }
  });
  const std::string acked = dir_.path() + "/acked";
  std::ofstream(acked) << "1 1000\n2 1100\n";
  const common::CommandResult checked = Client({"check", "--target", Target(), "--acked", acked});
  ::shutdown(listener, SHUT_RDWR);  // A check that gave up early leaves accept() waiting.
  server.join();
  ::close(listener);
  EXPECT_EQ(checked.exit_code, 0) << checked.stdout_text << checked.stderr_text;
  EXPECT_THAT(checked.stdout_text,
              MatchesRegex("READ interrupted after 1 records \\(.*\\); reading again\n"
                           "all 2 acknowledged records present \\(2 stored\\)\n"
                           "writers: none tagged\n"));
}

TEST_F(AppLogTest, CheckProvesNoOlderWriterWroteAfterANewerOne) {
  // The first host, tagged by flag.
  std::unique_ptr<Child> server = StartServer(0, {"--writer", "h1@1"});
  const std::string acked = dir_.path() + "/acked";
  const common::CommandResult wrote =
      Client({"write", "--target", Target(), "--count", "5", "--acked", acked});
  ASSERT_EQ(wrote.exit_code, 0) << wrote.stderr_text;
  server->Signal(SIGTERM);
  ASSERT_NE(server->Wait(absl::Seconds(5)), -1);

  // The standby, tagged from the environment the jail agent sets; an old
  // acknowledgement's retry (id 5 again) and new records.
  server = StartServer(0, {}, {"JAILOVER_HOST=h2", "JAILOVER_EPOCH=2"});
  EXPECT_THAT(testing::ReadFileOrEmpty(server_log_),
              HasSubstr("(5 records) on " + Target() + " as writer h2@2"));
  // True when the server acknowledges, naming `writer`.
  auto append = [&](const std::string& id, const std::string& writer) {
    std::unique_ptr<applog::LineConn> conn = Connect();
    std::string error;
    if (conn == nullptr || !conn->Send("APPEND " + id + " late\n", &error)) return false;
    return conn->ReadLine(&error) == "OK " + id + " " + writer;
  };
  ASSERT_TRUE(append("5", "h2@2"));
  ASSERT_TRUE(append("6", "h2@2"));
  ASSERT_TRUE(append("7", "h2@2"));
  std::unique_ptr<applog::LineConn> conn = Connect();
  ASSERT_NE(conn, nullptr);
  std::string error;
  ASSERT_TRUE(conn->Send("READ\n", &error)) << error;
  EXPECT_EQ(conn->ReadLine(&error), "1 record 1 from the lab client\th1@1");  // tag and all
  const std::string file = testing::ReadFileOrEmpty(log_path_);
  EXPECT_THAT(file, HasSubstr("5 record 5 from the lab client\th1@1\n5 late\th2@2\n"));
  EXPECT_THAT(file, ::testing::EndsWith("7 late\th2@2\n"));

  common::CommandResult checked = Client({"check", "--target", Target(), "--acked", acked});
  EXPECT_EQ(checked.exit_code, 0) << checked.stdout_text << checked.stderr_text;
  EXPECT_EQ(checked.stdout_text,
            "all 5 acknowledged records present (8 stored)\n"
            "writers in order: h1@1 (5 records), h2@2 (3 records)\n"
            "acknowledged by, in order: h1@1 (5 records)\n");
  EXPECT_THAT(testing::ReadFileOrEmpty(acked),
              ::testing::ContainsRegex("^1 [0-9]+ h1@1\n2 [0-9]+ h1@1\n"));

  // The old host writes again after the standby took over: caught. The
  // flag wins over the environment.
  server->Signal(SIGTERM);
  ASSERT_NE(server->Wait(absl::Seconds(5)), -1);
  server = StartServer(0, {"--writer", "h1@1"}, {"JAILOVER_HOST=h2", "JAILOVER_EPOCH=2"});
  ASSERT_TRUE(append("9", "h1@1"));
  checked = Client({"check", "--target", Target(), "--acked", acked});
  EXPECT_EQ(checked.exit_code, 1) << checked.stdout_text << checked.stderr_text;
  EXPECT_EQ(checked.stdout_text,
            "all 5 acknowledged records present (9 stored)\n"
            "record 9 by h1@1 stored after record 5 by h2@2: an older writer wrote after a "
            "newer one\n"
            "acknowledged by, in order: h1@1 (5 records)\n");
}

TEST_F(AppLogTest, CheckCatchesAnOlderServerAcknowledgingAfterANewerOne) {
  // A client gets acknowledgements from h1@1, then h2@2, then h1@1 again (a
  // stale host still serving): each stored on its own file, so the stored
  // order alone cannot show it; the acknowledgements can.
  const std::string acked = dir_.path() + "/acked";
  std::unique_ptr<Child> server = StartServer(0, {"--writer", "h2@2"});
  const common::CommandResult wrote =
      Client({"write", "--target", Target(), "--count", "3", "--acked", acked});
  ASSERT_EQ(wrote.exit_code, 0) << wrote.stderr_text;
  // Forged around the real acknowledgements: h1@1 before and after them.
  const std::string real = testing::ReadFileOrEmpty(acked);
  ASSERT_THAT(real, ::testing::ContainsRegex("^1 [0-9]+ h2@2\n2 [0-9]+ h2@2\n3 [0-9]+ h2@2\n$"));
  const std::string forged = dir_.path() + "/forged";
  std::ofstream(forged) << "7 900 h1@1\n" << real << "8 990000000000000 h1@1\n";
  common::CommandResult checked = Client({"check", "--target", Target(), "--acked", forged});
  EXPECT_EQ(checked.exit_code, 1) << checked.stdout_text << checked.stderr_text;
  EXPECT_THAT(checked.stdout_text,
              HasSubstr("record 8 acknowledged by h1@1 after record 1 acknowledged by h2@2: an "
                        "older writer served after a newer one\n"));
  // The same file without the stale one passes (7 is missing from the log,
  // which check reports, but the order is fine).
  std::ofstream(forged, std::ios::trunc) << real;
  checked = Client({"check", "--target", Target(), "--acked", forged});
  EXPECT_EQ(checked.exit_code, 0) << checked.stdout_text << checked.stderr_text;
  EXPECT_EQ(checked.stdout_text,
            "all 3 acknowledged records present (3 stored)\n"
            "writers in order: h2@2 (3 records)\n"
            "acknowledged by, in order: h2@2 (3 records)\n");
}

TEST_F(AppLogTest, EnvironmentThatNamesNoWriterLeavesRecordsUntagged) {
  std::unique_ptr<Child> server = StartServer(0, {}, {"JAILOVER_HOST=h2"});
  std::unique_ptr<applog::LineConn> conn = Connect();
  ASSERT_NE(conn, nullptr);
  std::string error;
  ASSERT_TRUE(conn->Send("APPEND 1 one\n", &error)) << error;
  EXPECT_EQ(conn->ReadLine(&error), "OK 1");
  EXPECT_EQ(testing::ReadFileOrEmpty(log_path_), "1 one\n");
  const std::string log = testing::ReadFileOrEmpty(server_log_);
  EXPECT_THAT(log, HasSubstr("records are stored without a writer tag: JAILOVER_HOST is set but "
                             "JAILOVER_EPOCH is not"));
  EXPECT_THAT(log, Not(HasSubstr("as writer")));
}

TEST_F(AppLogTest, EveryAcknowledgedRecordSurvivesAServerKilledMidStream) {
  std::unique_ptr<Child> server = StartServer();
  const int port = port_;
  const std::string acked = dir_.path() + "/acked";
  const std::string client_log = dir_.path() + "/client.log";
  Child client({JAILOVER_APPLOG_CLIENT_BIN, "write", "--target", Target(), "--count", "200",
                "--interval-ms", "2", "--timeout-ms", "1000", "--acked", acked},
               client_log);
  ASSERT_TRUE(testing::WaitUntil([&] { return AckedLines(acked) >= 60; }, absl::Seconds(30)))
      << testing::ReadFileOrEmpty(client_log);

  server->Signal(SIGKILL);
  ASSERT_NE(server->Wait(absl::Seconds(5)), -1);
  const int acked_at_kill = AckedLines(acked);
  // What a crash in the middle of an append leaves: a partial record.
  { std::ofstream(log_path_, std::ios::app) << "9999 half a rec"; }
  // The client notices and keeps retrying the same record.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return testing::ReadFileOrEmpty(client_log).find("not acknowledged") != std::string::npos;
      },
      absl::Seconds(10)))
      << testing::ReadFileOrEmpty(client_log);
  EXPECT_LT(acked_at_kill, 200);

  server = StartServer(port);
  const int status = client.Wait(absl::Seconds(60));
  ASSERT_TRUE(WIFEXITED(status)) << "wait status " << status << "\n"
                                 << testing::ReadFileOrEmpty(client_log);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const std::string client_output = testing::ReadFileOrEmpty(client_log);
  EXPECT_THAT(client_output, HasSubstr("acknowledged 200 records"));
  EXPECT_THAT(client_output, MatchesRegex("(.|\n)*record [0-9]+ acknowledged after [0-9]+ ms of "
                                          "retries(.|\n)*"));
  EXPECT_EQ(AckedLines(acked), 200);
  EXPECT_THAT(testing::ReadFileOrEmpty(server_log_),
              HasSubstr("cut a partial last record of 15 bytes"));

  const common::CommandResult checked = Client({"check", "--target", Target(), "--acked", acked});
  EXPECT_EQ(checked.exit_code, 0) << checked.stdout_text << checked.stderr_text;
  EXPECT_THAT(checked.stdout_text, HasSubstr("all 200 acknowledged records present"));
  std::cout << client_output << checked.stdout_text;
  // Every stored line is a whole record: the partial one was cut, not glued.
  std::ifstream in(log_path_);
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(applog::ParseRecord(line).has_value()) << line;
  }
}

}  // namespace
}  // namespace jailover
