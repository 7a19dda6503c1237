// Golden tests of the jail argv builders, the jail.conf(5) renderer and the
// jls/jail output parsers against the formats in shared/freebsd-reference.md
// sections 1, 2, 3 and 7.2 (testdata written from jls.c's libxo formats, not
// captured from a live system).
#include "agent/driver/freebsd/jail_commands.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/validation/jail_params.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace jailover::agent::freebsd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

std::string Testdata(const std::string& name) {
  return testing::ReadTestdata("freebsd/jail/" + name);
}

FreeBsdDriverOptions Options() {
  FreeBsdDriverOptions options;
  options.state_dir = "/var/db/jailover";
  options.command_timeout = absl::Seconds(120);
  return options;
}

JailConfig FullConfig() {
  JailConfig config;
  config.name = "web01";
  config.hostname = "web01.example.org";
  config.path = "/var/jailover/jails/web01";
  config.ip4_address = "198.18.0.100";
  config.exec_start = {"/bin/sh", "/etc/rc"};
  config.exec_stop = {"/bin/sh", "/etc/rc.shutdown", "jail"};
  config.stop_timeout = absl::Seconds(30);
  config.devfs_ruleset = 4;
  config.securelevel = 2;
  config.enforce_statfs = 1;
  config.allow = {"raw_sockets", "mount.nullfs"};
  config.params = {{"osrelease", "14.1-RELEASE"}, {"sysvshm", "new"}};
  config.limits = {{"memoryuse", "deny", "1g"}, {"maxproc", "deny", "200"}};
  config.env = {{"APP_ENV", "prod"}, {"GREETING", "hello world"}};
  return config;
}

JailConfig MinimalConfig() {
  JailConfig config;
  config.name = "db1";
  config.path = "/jails/db1";
  config.exec_start = {"/usr/local/bin/db"};
  return config;
}

TEST(RenderJailConfTest, FullConfig) {
  const absl::StatusOr<std::string> conf = RenderJailConf(FullConfig(), Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(*conf,
            "# jail.conf(5) file of jail web01, written by jailover-agent; do not edit.\n"
            "# rctl: memoryuse:deny=1g\n"
            "# rctl: maxproc:deny=200\n"
            "web01 {\n"
            "\tpath = \"/var/jailover/jails/web01\";\n"
            "\thost.hostname = \"web01.example.org\";\n"
            "\tip4.addr = \"198.18.0.100\";\n"
            "\tpersist;\n"
            "\tmount.devfs;\n"
            "\tdevfs_ruleset = \"4\";\n"
            "\tenforce_statfs = \"1\";\n"
            "\tsecurelevel = \"2\";\n"
            "\tchildren.max = \"0\";\n"
            "\tallow.raw_sockets;\n"
            "\tallow.mount.nullfs;\n"
            "\texec.clean;\n"
            "\texec.start = \"/usr/bin/env APP_ENV=prod 'GREETING=hello world' /bin/sh "
            "/etc/rc\";\n"
            "\texec.stop = \"/bin/sh /etc/rc.shutdown jail\";\n"
            "\texec.consolelog = \"/var/db/jailover/jails/web01.console.log\";\n"
            "\texec.timeout = \"110\";\n"
            "\tstop.timeout = \"30\";\n"
            "\tosrelease = \"14.1-RELEASE\";\n"
            "\tsysvshm = \"new\";\n"
            "}\n");
}

TEST(RenderJailConfTest, FullConfigMatchesTheGoldenFile) {
  // The same text as above, kept as a file for the fuzzer's seed corpus.
  const absl::StatusOr<std::string> conf = RenderJailConf(FullConfig(), Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(*conf, Testdata("conf_web01.conf"));
}

TEST(RenderJailConfTest, MinimalConfigLeavesOutEmptyFields) {
  FreeBsdDriverOptions options = Options();
  options.command_timeout = absl::Seconds(5);  // exec.timeout never drops below 1
  JailConfig config = MinimalConfig();
  config.stop_timeout = absl::Milliseconds(1500);  // rounded up
  const absl::StatusOr<std::string> conf = RenderJailConf(config, options);
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_EQ(*conf,
            "# jail.conf(5) file of jail db1, written by jailover-agent; do not edit.\n"
            "db1 {\n"
            "\tpath = \"/jails/db1\";\n"
            "\tpersist;\n"
            "\tmount.devfs;\n"
            "\tdevfs_ruleset = \"4\";\n"
            "\tenforce_statfs = \"2\";\n"
            "\tsecurelevel = \"2\";\n"
            "\tchildren.max = \"0\";\n"
            "\texec.clean;\n"
            "\texec.start = \"/usr/local/bin/db\";\n"
            "\texec.consolelog = \"/var/db/jailover/jails/db1.console.log\";\n"
            "\texec.timeout = \"1\";\n"
            "\tstop.timeout = \"2\";\n"
            "}\n");
}

TEST(RenderJailConfTest, TrailingSlashOfPathIsDropped) {
  JailConfig config = MinimalConfig();
  config.path = "/jails/db1/";
  const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_THAT(*conf, HasSubstr("\tpath = \"/jails/db1\";\n"));
}

TEST(RenderJailConfTest, EscapesQuoteBackslashAndDollarInValues) {
  JailConfig config = MinimalConfig();
  config.hostname = "h$ost";
  config.params = {{"osrelease", "a\"b\\c$d${e}"}};
  const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  EXPECT_THAT(*conf, HasSubstr("\thost.hostname = \"h\\$ost\";\n"));
  EXPECT_THAT(*conf, HasSubstr("\tosrelease = \"a\\\"b\\\\c\\$d\\${e}\";\n"));
}

TEST(RenderJailConfTest, QuotesExecArgvForShAndConf) {
  JailConfig config = MinimalConfig();
  config.exec_start = {"/bin/echo", "it's", "$HOME", "a b", "x;y", "", "back\\slash", "\"dq\""};
  const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  // sh line:  /bin/echo 'it'\''s' '$HOME' 'a b' 'x;y' '' 'back\slash' '"dq"'
  // in conf:  \ -> \\, " -> \", $ -> \$
  EXPECT_THAT(*conf, HasSubstr("\texec.start = \"/bin/echo 'it'\\\\''s' '\\$HOME' 'a b' 'x;y' "
                               "'' 'back\\\\slash' '\\\"dq\\\"'\";\n"));
}

TEST(QuoteJailConfStringTest, Golden) {
  EXPECT_EQ(QuoteJailConfString(""), "\"\"");
  EXPECT_EQ(QuoteJailConfString("plain text"), "\"plain text\"");
  EXPECT_EQ(QuoteJailConfString("\"\\$"), "\"\\\"\\\\\\$\"");
  EXPECT_EQ(QuoteJailConfString("tab\there"), "\"tab\there\"");
}

TEST(ShellQuoteArgvTest, Golden) {
  EXPECT_EQ(ShellQuoteArgv({"/bin/sh", "/etc/rc"}), "/bin/sh /etc/rc");
  EXPECT_EQ(ShellQuoteArgv({"/usr/bin/env", "A=b", "c=d"}), "/usr/bin/env A=b c=d");
  EXPECT_EQ(ShellQuoteArgv({"A=b", "x"}), "'A=b' x");
  EXPECT_EQ(ShellQuoteArgv({"cmd", ""}), "cmd ''");
  EXPECT_EQ(ShellQuoteArgv({"cmd", "it's"}), "cmd 'it'\\''s'");
  EXPECT_EQ(ShellQuoteArgv({"cmd", "~", "#x", "*", "a&", "\t"}), "cmd '~' '#x' '*' 'a&' '\t'");
  EXPECT_EQ(ShellQuoteArgv({"cmd", "-x", "user@host:1,2+3%"}), "cmd -x user@host:1,2+3%");
}

// --- A model of what jail(8) does with an exec.* value, to check that the
// rendered value gives the jail exactly the argv we meant.

// jail.conf: text2lval() on the body of a double-quoted string.
std::string ConfUnescape(const std::string& body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] == '$') ADD_FAILURE() << "unescaped $ (a variable) in " << body;
    if (body[i] != '\\') {
      out += body[i];
      continue;
    }
    ++i;
    EXPECT_LT(i, body.size());
    const char c = body[i];
    if ((c >= '0' && c <= '7') || std::string("abfnrtvx").find(c) != std::string::npos) {
      ADD_FAILURE() << "escape sequence \\" << c << " in " << body;
    }
    out += c;
  }
  return out;
}

// POSIX sh word splitting for what ShellQuoteArgv produces: unquoted safe
// characters and single-quoted strings. Anything else fails the test.
std::vector<std::string> ShSplit(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      EXPECT_NE(end, std::string::npos) << line;
      if (end == std::string::npos) return words;
      word += line.substr(i + 1, end - i - 1);
      i = end;
      in_word = true;
    } else if (c == '\\') {
      EXPECT_LT(i + 1, line.size());
      word += line[++i];
      in_word = true;
    } else {
      EXPECT_EQ(std::string("!\"$&()*;<>?[]`{|}~#\t\n").find(c), std::string::npos)
          << "unquoted '" << c << "' in " << line;
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

// command.c run_command(): through /bin/sh -c with a metacharacter, else
// split on whitespace.
std::vector<std::string> JailExecArgv(const std::string& command) {
  if (command.find_first_of("!\"$&'()*;<>?[\\]`{|}~") != std::string::npos) {
    return ShSplit(command);
  }
  return absl::StrSplit(command, absl::ByAnyChar(" \t\f\v\r\n"), absl::SkipEmpty());
}

TEST(RenderJailConfTest, ExecArgvSurvivesConfAndJailParsing) {
  const std::vector<std::vector<std::string>> argvs = {
      {"/bin/sh", "/etc/rc"},
      {"/bin/echo", "it's", "$HOME", "a b", "x;y", "", "back\\slash", "\"dq\""},
      {"/bin/echo", "&"},
      {"/bin/echo", "a\tb", "c\rd", "\f", "'", "''", "\\'", "${x}", "`id`", "$(id)"},
      {"/bin/echo", "*", "?", "[a]", "{a,b}", "~root", "#comment", "a|b", "a>b", "!"},
      {"sh", "-c", "exec /usr/local/bin/app --flag=\"quoted value\" 2>&1"},
      {"/bin/echo", "x=y", "-", "--", "%1", "caf\xc3\xa9"},
  };
  for (const std::vector<std::string>& argv : argvs) {
    JailConfig config = MinimalConfig();
    config.exec_start = argv;
    const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
    ASSERT_TRUE(conf.ok()) << conf.status();
    const std::string prefix = "\texec.start = \"";
    const size_t begin = conf->find(prefix);
    ASSERT_NE(begin, std::string::npos);
    const size_t end = conf->find("\";\n", begin);
    ASSERT_NE(end, std::string::npos);
    const std::string value = ConfUnescape(conf->substr(begin + prefix.size(),
                                                        end - begin - prefix.size()));
    EXPECT_EQ(JailExecArgv(value), argv) << value;
  }
}

TEST(RenderJailConfTest, EnvBecomesAnEnvPrefixThatSurvives) {
  JailConfig config = MinimalConfig();
  config.env = {{"A", "x y"}, {"B", "it's $1"}, {"C", ""}};
  const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  const std::string prefix = "\texec.start = \"";
  const size_t begin = conf->find(prefix);
  const size_t end = conf->find("\";\n", begin);
  ASSERT_NE(end, std::string::npos);
  EXPECT_THAT(JailExecArgv(ConfUnescape(
                  conf->substr(begin + prefix.size(), end - begin - prefix.size()))),
              ElementsAre("/usr/bin/env", "A=x y", "B=it's $1", "C=", "/usr/local/bin/db"));
}

TEST(RenderJailConfTest, BadConfigsAreRefusedNamingTheField) {
  struct Case {
    std::function<void(JailConfig&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](JailConfig& c) { c.name = "web.01"; }, "jail name"},
      {[](JailConfig& c) { c.name = "bad name"; }, "jail name"},
      {[](JailConfig& c) { c.name = ""; }, "jail name"},
      {[](JailConfig& c) { c.name = "123"; }, "jail name"},
      {[](JailConfig& c) { c.path = "jails/web01"; }, "path"},
      {[](JailConfig& c) { c.path = ""; }, "path"},
      {[](JailConfig& c) { c.path = "/"; }, "path"},
      {[](JailConfig& c) { c.path = "/jails/../etc"; }, "path"},
      {[](JailConfig& c) { c.path = "/jails/web 01"; }, "path"},
      {[](JailConfig& c) { c.path = "/jails/$web01"; }, "path"},
      {[](JailConfig& c) { c.path = "/jails/web01;reboot"; }, "path"},
      {[](JailConfig& c) { c.hostname = "a\nb"; }, "hostname"},
      {[](JailConfig& c) { c.hostname = std::string(256, 'h'); }, "hostname"},
      {[](JailConfig& c) { c.ip4_address = "2001:db8::1"; }, "ip4_address"},
      {[](JailConfig& c) { c.ip4_address = "em0|198.18.0.100"; }, "ip4_address"},
      {[](JailConfig& c) { c.ip4_address = "198.18.0.100/24"; }, "ip4_address"},
      {[](JailConfig& c) { c.exec_start.clear(); }, "exec_start"},
      {[](JailConfig& c) { c.exec_start = {""}; }, "exec_start[0]"},
      {[](JailConfig& c) { c.exec_start = {"FOO=bar", "/bin/app"}; }, "exec_start[0]"},
      {[](JailConfig& c) { c.exec_start = {"/bin/sh", "a\nb"}; }, "exec_start[1]"},
      {[](JailConfig& c) { c.exec_stop = {"/bin/sh", std::string("a\0b", 3)}; }, "exec_stop[1]"},
      {[](JailConfig& c) { c.env = {{"1BAD", "x"}}; }, "env"},
      {[](JailConfig& c) { c.env = {{"A-B", "x"}}; }, "env"},
      {[](JailConfig& c) { c.env = {{"OK", "a\nb"}}; }, "env"},
      {[](JailConfig& c) { c.stop_timeout = absl::Seconds(-1); }, "stop_timeout"},
      {[](JailConfig& c) { c.stop_timeout = absl::Hours(25); }, "stop_timeout"},
      {[](JailConfig& c) { c.devfs_ruleset = -1; }, "devfs_ruleset"},
      {[](JailConfig& c) { c.devfs_ruleset = 65536; }, "devfs_ruleset"},
      {[](JailConfig& c) { c.securelevel = -2; }, "securelevel"},
      {[](JailConfig& c) { c.securelevel = 4; }, "securelevel"},
      {[](JailConfig& c) { c.enforce_statfs = -1; }, "enforce_statfs"},
      {[](JailConfig& c) { c.enforce_statfs = 3; }, "enforce_statfs"},
      {[](JailConfig& c) { c.allow = {"Raw_Sockets"}; }, "allow[0]"},
      {[](JailConfig& c) { c.allow = {"raw_sockets", "raw sockets"}; }, "allow[1]"},
      {[](JailConfig& c) { c.allow = {"mount..devfs"}; }, "allow[0]"},
      {[](JailConfig& c) { c.allow = {""}; }, "allow[0]"},
      {[](JailConfig& c) { c.allow = {"x;y"}; }, "allow[0]"},
      {[](JailConfig& c) { c.params = {{"Osrelease", "x"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{"a b", "x"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{"a=b", "x"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{"", "x"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{".osrelease", "x"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{"osrelease", "a\nb"}}; }, "params"},
      {[](JailConfig& c) { c.params = {{"osrelease", std::string("a\0b", 3)}}; }, "params"},
      {[](JailConfig& c) { c.limits = {{"Memoryuse", "deny", "1g"}}; }, "limits[0].resource"},
      {[](JailConfig& c) { c.limits = {{"", "deny", "1g"}}; }, "limits[0].resource"},
      {[](JailConfig& c) { c.limits = {{"memory:use", "deny", "1g"}}; }, "limits[0].resource"},
      {[](JailConfig& c) { c.limits = {{"maxproc", "deny", "1"}, {"memoryuse", "deny!", "1g"}}; },
       "limits[1].action"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "", "1g"}}; }, "limits[0].action"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", ""}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "1gb"}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "-1"}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "1.5g"}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "g"}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "1g/user"}}; }, "limits[0].amount"},
      {[](JailConfig& c) { c.limits = {{"memoryuse", "deny", "1g jail:x:y:z=1"}}; },
       "limits[0].amount"},
  };
  for (const Case& c : cases) {
    JailConfig config = FullConfig();
    c.mutate(config);
    const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
    EXPECT_EQ(conf.status().code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(conf.status().message()), HasSubstr(c.field));
  }
}

TEST(RenderJailConfTest, ManagedParamsAreRefused) {
  for (const char* param :
       {"name", "jid", "path", "host", "host.hostname", "ip4", "ip4.addr", "ip6", "ip6.addr",
        "vnet", "vnet.interface", "interface", "ip_hostname", "persist", "nopersist",
        "devfs_ruleset", "enforce_statfs", "securelevel", "children.max", "stop.timeout",
        "command", "depend", "mount", "mount.devfs", "mount.nodevfs", "mount.fstab",
        "exec.start", "exec.prestart", "exec.noclean", "exec.jail_user", "allow.mount",
        "allow.nomount", "allow.dying", "ip4.noaddr"}) {
    JailConfig config = FullConfig();
    config.params = {{param, "x"}};
    const absl::StatusOr<std::string> conf = RenderJailConf(config, Options());
    EXPECT_EQ(conf.status().code(), absl::StatusCode::kInvalidArgument) << param;
    EXPECT_THAT(std::string(conf.status().message()),
                HasSubstr(absl::StrCat("params \"", param, "\"")));
    EXPECT_TRUE(common::IsManagedJailParam(param)) << param;
  }
  for (const char* param : {"osrelease", "osreldate", "sysvshm", "ip4.saddrsel",
                            "ip4.nosaddrsel", "linux.osname", "notes", "host.hostuuid"}) {
    EXPECT_FALSE(common::IsManagedJailParam(param)) << param;
  }
}

TEST(RenderJailConfTest, RelativeStateDirIsRefused) {
  FreeBsdDriverOptions options = Options();
  options.state_dir = "var/db/jailover";
  const absl::StatusOr<std::string> conf = RenderJailConf(FullConfig(), options);
  EXPECT_EQ(conf.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(conf.status().message()), HasSubstr("state_dir"));
}

TEST(ValidateJailNameTest, Golden) {
  EXPECT_TRUE(ValidateJailName("web01").ok());
  EXPECT_TRUE(ValidateJailName("web-01_a").ok());
  EXPECT_TRUE(ValidateJailName("1web").ok());
  EXPECT_FALSE(ValidateJailName("web.01").ok());
  EXPECT_FALSE(ValidateJailName("42").ok());
  EXPECT_FALSE(ValidateJailName("../x").ok());
  EXPECT_FALSE(ValidateJailName("*").ok());
}

TEST(ParseJailConfTest, ReadsBackWhatRenderWrote) {
  const absl::StatusOr<std::string> conf = RenderJailConf(FullConfig(), Options());
  ASSERT_TRUE(conf.ok()) << conf.status();
  const absl::StatusOr<JailConfSummary> summary = ParseJailConf(*conf);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->name, "web01");
  EXPECT_EQ(summary->path, "/var/jailover/jails/web01");
  EXPECT_EQ(summary->stop_timeout, absl::Seconds(30));
  ASSERT_EQ(summary->limits.size(), 2u);
  EXPECT_EQ(FormatRctlRule(summary->limits[0]), "memoryuse:deny=1g");
  EXPECT_EQ(FormatRctlRule(summary->limits[1]), "maxproc:deny=200");
}

TEST(ParseJailConfTest, UnescapesValuesAndDefaultsTheStopTimeout) {
  const absl::StatusOr<JailConfSummary> summary =
      ParseJailConf("x {\n\tpath = \"/a\\\\b\\\"c\\$d\";\n}\n");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->name, "x");
  EXPECT_EQ(summary->path, "/a\\b\"c$d");
  EXPECT_EQ(summary->stop_timeout, kDefaultJailStopTimeout);
  EXPECT_THAT(summary->limits, IsEmpty());
}

TEST(ParseJailConfTest, BadFilesAreInternal) {
  for (const char* text : {"",
                           "# only a comment\n",
                           "x {\n\tpersist;\n}\n",
                           "x {\n\tpath = \"/a\";\n}\ny {\n\tpath = \"/b\";\n}\n",
                           "# rctl: memoryuse\nx {\n\tpath = \"/a\";\n}\n",
                           "# rctl: memoryuse:deny=lots\nx {\n\tpath = \"/a\";\n}\n",
                           "x {\n\tpath = \"/a\";\n\tstop.timeout = \"-1\";\n}\n",
                           "x {\n\tpath = \"/a\";\n\tstop.timeout = \"ten\";\n}\n",
                           "x {\n\tpath = \"/a\\\";\n}\n"}) {
    const absl::StatusOr<JailConfSummary> summary = ParseJailConf(text);
    EXPECT_EQ(summary.status().code(), absl::StatusCode::kInternal) << text;
    EXPECT_THAT(std::string(summary.status().message()), StartsWith("jail conf")) << text;
  }
}

TEST(JailArgvTest, Builders) {
  EXPECT_THAT(BuildJailCreateArgv("/var/db/jailover/jails/web01.conf", "web01"),
              ElementsAre("jail", "-i", "-f", "/var/db/jailover/jails/web01.conf", "-c",
                          "web01"));
  EXPECT_THAT(BuildJailRemoveArgv("/var/db/jailover/jails/web01.conf", "web01"),
              ElementsAre("jail", "-f", "/var/db/jailover/jails/web01.conf", "-r",
                          "web01"));
  EXPECT_THAT(BuildJailRemoveByNameArgv("web01"), ElementsAre("jail", "-r", "web01"));
  EXPECT_THAT(BuildJailForceRemoveArgv("web01"), ElementsAre("jail", "-R", "web01"));
  EXPECT_THAT(BuildJlsArgv(), ElementsAre("jls", "--libxo", "json", "-v"));
  EXPECT_THAT(BuildJexecArgv("7", {"/usr/sbin/service", "nginx", "status"}),
              ElementsAre("jexec", "-l", "7", "/usr/sbin/service", "nginx", "status"));
  EXPECT_THAT(BuildRctlAddArgv("web01", {"memoryuse", "deny", "1g"}),
              ElementsAre("rctl", "-a", "jail:web01:memoryuse:deny=1g"));
  EXPECT_THAT(BuildRctlAddArgv("web01", {"pcpu", "deny", "200"}),
              ElementsAre("rctl", "-a", "jail:web01:pcpu:deny=200"));
  EXPECT_THAT(BuildRctlRemoveArgv("web01"), ElementsAre("rctl", "-r", "jail:web01"));
  EXPECT_THAT(BuildDevfsUnmountArgv("/var/jailover/jails/web01"),
              ElementsAre("umount", "-f", "/var/jailover/jails/web01/dev"));
}

TEST(JailPathsTest, Golden) {
  EXPECT_EQ(JailConfDir("/var/db/jailover"), "/var/db/jailover/jails");
  EXPECT_EQ(JailConfPath("/var/db/jailover", "web01"), "/var/db/jailover/jails/web01.conf");
  EXPECT_EQ(JailConsoleLogPath("/var/db/jailover", "web01"),
            "/var/db/jailover/jails/web01.console.log");
}

TEST(ParseJailCreateJidTest, Golden) {
  EXPECT_EQ(*ParseJailCreateJid("7\n"), 7);
  EXPECT_EQ(*ParseJailCreateJid("123"), 123);
  EXPECT_EQ(*ParseJailCreateJid("web01: created\n15\n\n"), 15);
  for (const char* bad : {"", "\n", "seven\n", "0\n", "-3\n", "7x\n", "99999999999999999999\n",
                          "web01: created\n"}) {
    const absl::StatusOr<int64_t> jid = ParseJailCreateJid(bad);
    EXPECT_EQ(jid.status().code(), absl::StatusCode::kInternal) << bad;
    EXPECT_THAT(std::string(jid.status().message()), HasSubstr("jail -c")) << bad;
  }
}

TEST(ParseJlsJsonTest, NoJails) {
  for (const char* file : {"jls_none.json", "jls_none_no_list.json"}) {
    const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(Testdata(file));
    ASSERT_TRUE(jails.ok()) << file << ": " << jails.status();
    EXPECT_THAT(*jails, IsEmpty()) << file;
  }
}

TEST(ParseJlsJsonTest, OneJail) {
  const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(Testdata("jls_one.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 1u);
  const JailInfo& jail = (*jails)[0];
  EXPECT_EQ(jail.name, "web01");
  EXPECT_EQ(jail.jid, 7);
  EXPECT_EQ(jail.path, "/var/jailover/jails/web01");
  EXPECT_EQ(jail.hostname, "web01.example.org");
  EXPECT_THAT(jail.ip4_addresses, ElementsAre("198.18.0.100"));
  EXPECT_THAT(jail.ip6_addresses, IsEmpty());
  EXPECT_FALSE(jail.dying);
}

TEST(ParseJlsJsonTest, SeveralJailsCompactAndPretty) {
  const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(Testdata("jls_several.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 3u);
  EXPECT_EQ((*jails)[0].name, "web01");
  EXPECT_THAT((*jails)[0].ip4_addresses, ElementsAre("10.0.0.50", "10.0.0.51"));
  EXPECT_EQ((*jails)[1].name, "db1");
  EXPECT_EQ((*jails)[1].jid, 8);
  EXPECT_EQ((*jails)[1].path, "/jails/db1");
  EXPECT_EQ((*jails)[2].name, "build");
  EXPECT_EQ((*jails)[2].jid, 12);
  EXPECT_EQ((*jails)[2].hostname, "");
  EXPECT_THAT((*jails)[2].ip4_addresses, IsEmpty());

  const absl::StatusOr<std::vector<JailInfo>> pretty =
      ParseJlsJson(Testdata("jls_several_pretty.json"));
  ASSERT_TRUE(pretty.ok()) << pretty.status();
  ASSERT_EQ(pretty->size(), 2u);
  EXPECT_EQ((*pretty)[0].name, (*jails)[0].name);
  EXPECT_EQ((*pretty)[0].ip4_addresses, (*jails)[0].ip4_addresses);
  EXPECT_EQ((*pretty)[1].hostname, "db1.example.org");
}

TEST(ParseJlsJsonTest, Ipv6Addresses) {
  const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(Testdata("jls_ipv6.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 2u);
  EXPECT_THAT((*jails)[0].ip4_addresses, ElementsAre("192.0.2.10"));
  EXPECT_THAT((*jails)[0].ip6_addresses, ElementsAre("2001:db8::10", "fe80::1"));
  EXPECT_THAT((*jails)[1].ip4_addresses, IsEmpty());
  EXPECT_THAT((*jails)[1].ip6_addresses, ElementsAre("2001:db8::20"));
}

TEST(ParseJlsJsonTest, Version1ListsIpv6InIpv4Addrs) {
  const absl::StatusOr<std::vector<JailInfo>> jails =
      ParseJlsJson(Testdata("jls_v1_mixed.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 1u);
  EXPECT_THAT((*jails)[0].ip4_addresses, ElementsAre("192.0.2.1"));
  EXPECT_THAT((*jails)[0].ip6_addresses, ElementsAre("2001:db8::1"));
}

TEST(ParseJlsJsonTest, DyingJail) {
  const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(Testdata("jls_dying.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 2u);
  EXPECT_TRUE((*jails)[0].dying);
  EXPECT_EQ((*jails)[0].name, "web01");
  EXPECT_FALSE((*jails)[1].dying);
}

TEST(ParseJlsJsonTest, MissingOptionalFields) {
  const absl::StatusOr<std::vector<JailInfo>> jails =
      ParseJlsJson(Testdata("jls_missing_optional.json"));
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 1u);
  EXPECT_EQ((*jails)[0].name, "bare");
  EXPECT_EQ((*jails)[0].jid, 11);
  EXPECT_EQ((*jails)[0].path, "");
  EXPECT_EQ((*jails)[0].hostname, "");
  EXPECT_THAT((*jails)[0].ip4_addresses, IsEmpty());
  EXPECT_FALSE((*jails)[0].dying);
}

TEST(ParseJlsJsonTest, ParameterModeStringsAndBooleans) {
  const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(
      R"({"__version": "2", "jail-information": {"jail": [{"jid": "7", "name": "web01",)"
      R"( "host.hostname": "web01.example.org", "ip4.addr": ["10.0.0.50"], "dying": true}]}})");
  ASSERT_TRUE(jails.ok()) << jails.status();
  ASSERT_EQ(jails->size(), 1u);
  EXPECT_EQ((*jails)[0].jid, 7);
  EXPECT_EQ((*jails)[0].hostname, "web01.example.org");
  EXPECT_THAT((*jails)[0].ip4_addresses, ElementsAre("10.0.0.50"));
  EXPECT_TRUE((*jails)[0].dying);
}

TEST(ParseJlsJsonTest, BrokenOutputIsAClearInternalError) {
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Testdata("jls_truncated.json"), "not valid JSON"},
      {Testdata("jls_garbled.json"), "not valid JSON"},
      {Testdata("jls_text_not_json.txt"), "not valid JSON"},
      {"", "not valid JSON"},
      {Testdata("jls_default_mode.json"), "missing name"},
      {Testdata("jls_wrong_shape.json"), "not an array"},
      {"[]", "top level"},
      {"\"jail\"", "top level"},
      {R"({"__version": "2"})", "jail-information"},
      {R"({"jail-information": []})", "jail-information"},
      {R"({"jail-information": {"jail": [7]}})", "not an object"},
      {R"({"jail-information": {"jail": [{"name": "x"}]}})", "jid"},
      {R"({"jail-information": {"jail": [{"jid": 0, "name": "x"}]}})", "jid"},
      {R"({"jail-information": {"jail": [{"jid": -4, "name": "x"}]}})", "jid"},
      {R"({"jail-information": {"jail": [{"jid": 1.5, "name": "x"}]}})", "jid"},
      {R"({"jail-information": {"jail": [{"jid": "7a", "name": "x"}]}})", "jid"},
      {R"({"jail-information": {"jail": [{"jid": 18446744073709551615, "name": "x"}]}})",
       "jid"},
      {R"({"jail-information": {"jail": [{"jid": 1, "name": 5}]}})", "name"},
      {R"({"jail-information": {"jail": [{"jid": 1, "name": "x", "path": 5}]}})", "path"},
      {R"({"jail-information": {"jail": [{"jid": 1, "name": "x", "ipv4_addrs": [1]}]}})",
       "ipv4_addrs"},
      {R"({"jail-information": {"jail": [{"jid": 1, "name": "x", "ipv6_addrs": {}}]}})",
       "ipv6_addrs"},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<std::vector<JailInfo>> jails = ParseJlsJson(c.text);
    EXPECT_EQ(jails.status().code(), absl::StatusCode::kInternal) << c.text;
    EXPECT_THAT(std::string(jails.status().message()), StartsWith("jls: ")) << c.text;
    EXPECT_THAT(std::string(jails.status().message()), HasSubstr(c.message)) << c.text;
  }
}

TEST(JailMessagesTest, NotFound) {
  EXPECT_TRUE(IsJailNotFound("jail: \"web01\" not found\n"));
  EXPECT_TRUE(IsJailNotFound("jls: jail \"web01\" not found\n"));
  EXPECT_TRUE(IsJailNotFound("jexec: jail \"web01\" not found\n"));
  EXPECT_TRUE(IsJailNotFound("jls: jail 7 not found\n"));
  EXPECT_TRUE(IsJailNotFound("something else\njail: \"web01\" not found"));
  EXPECT_FALSE(IsJailNotFound(""));
  EXPECT_FALSE(IsJailNotFound("jail: web01: /bin/sh /etc/rc.shutdown jail: failed\n"));
  EXPECT_FALSE(IsJailNotFound("jail: web01: path /x: No such file or directory\n"));
  EXPECT_FALSE(IsJailNotFound("/bin/sh: foo: not found\n"));
  EXPECT_FALSE(IsJailNotFound("jail: \"web01\" already exists\n"));
}

TEST(JailMessagesTest, AlreadyExists) {
  EXPECT_TRUE(IsJailAlreadyExists("jail: \"web01\" already exists\n"));
  EXPECT_FALSE(IsJailAlreadyExists("jail: \"web01\" not found\n"));
  EXPECT_FALSE(IsJailAlreadyExists("jail: web01: mkdir: /x: File exists already exists\n"));
}

}  // namespace
}  // namespace jailover::agent::freebsd
