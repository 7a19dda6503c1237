#include "common/validation/validation.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace jailover::common {
namespace {

using ::testing::HasSubstr;

// One row of a table: the input and whether it must be accepted.
struct Case {
  std::string input;
  bool ok;
};

// Prints a table input readably in failure messages (NUL and control bytes
// included).
std::string Show(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

void ExpectInvalidArgumentIfRejected(const absl::Status& status, const Case& c) {
  EXPECT_EQ(status.ok(), c.ok) << Show(c.input) << " -> " << status;
  if (!c.ok) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << Show(c.input);
  }
}

TEST(ValidateNameTest, Table) {
  const std::vector<Case> cases = {
      {"web01", true},
      {"db.prod-1", true},
      {"a", true},
      {"0", true},
      {"A_b-c.d", true},
      {std::string(63, 'a'), true},
      {std::string(64, 'a'), false},
      {"", false},
      {".", false},
      {"..", false},
      {"-x", false},
      {"_x", false},
      {".hidden", false},
      {"a/b", false},
      {"a b", false},
      {"a\tb", false},
      {"web01.", false},
      {"web01..", false},
      {"caf\xc3\xa9", false},       // "café" in UTF-8
      {"\xe2\x82\xac" "1", false},  // "€1"
      {std::string("a\0b", 3), false},
      {"a:b", false},
      {"a@b", false},
      {"a\\b", false},
  };
  for (const Case& c : cases) {
    ExpectInvalidArgumentIfRejected(ValidateName("jail name", c.input), c);
  }
}

TEST(ValidateNameTest, MessageNamesTheFieldAndTheValue) {
  const absl::Status s = ValidateName("jail name", "a/b");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("jail name"));
  EXPECT_THAT(s.message(), HasSubstr("\"a/b\""));
  EXPECT_THAT(ValidateName("image name", "").message(), HasSubstr("image name"));
  EXPECT_THAT(ValidateName("vip name", std::string(64, 'v')).message(),
              HasSubstr("longer than 63"));
}

TEST(ValidateNameTest, MessageEscapesControlBytesAndShortensLongValues) {
  const absl::Status s = ValidateName("host name", "a\nb");
  EXPECT_THAT(s.message(), HasSubstr("a\\nb"));
  EXPECT_EQ(s.message().find('\n'), absl::string_view::npos);
  const absl::Status long_name = ValidateName("host name", std::string(5000, 'x'));
  EXPECT_LT(long_name.message().size(), 300u);
  EXPECT_THAT(long_name.message(), HasSubstr("5000 bytes"));
}

// A path row: input, accepted, and the normalised result when accepted.
struct PathCase {
  std::string input;
  bool ok;
  std::string want;
};

TEST(ValidateAbsolutePathTest, Table) {
  const std::vector<PathCase> cases = {
      {"/", true, "/"},
      {"/srv", true, "/srv"},
      {"/srv/", true, "/srv"},
      {"/srv/jails/web01", true, "/srv/jails/web01"},
      {"/srv/jails/web01/", true, "/srv/jails/web01"},
      {"/a.b/..c/c..", true, "/a.b/..c/c.."},  // dots inside names are fine
      {"/with space", true, "/with space"},
      {"/" + std::string(1022, 'p'), true, "/" + std::string(1022, 'p')},
      {"/" + std::string(1023, 'p'), false, ""},
      {"", false, ""},
      {"srv", false, ""},
      {"srv/jails", false, ""},
      {"./srv", false, ""},
      {"/srv/../etc", false, ""},
      {"/..", false, ""},
      {"/srv/..", false, ""},
      {"/srv/./jails", false, ""},
      {"/.", false, ""},
      {"/srv//jails", false, ""},
      {"//srv", false, ""},
      {"//", false, ""},
      {"/srv//", false, ""},
      {std::string("/srv\0/x", 7), false, ""},
  };
  for (const PathCase& c : cases) {
    const absl::StatusOr<std::string> got = ValidateAbsolutePath("jail root", c.input);
    EXPECT_EQ(got.ok(), c.ok) << Show(c.input) << " -> " << got.status();
    if (c.ok && got.ok()) {
      EXPECT_EQ(*got, c.want) << Show(c.input);
    }
    if (!c.ok) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << Show(c.input);
      EXPECT_THAT(got.status().message(), HasSubstr("jail root")) << Show(c.input);
    }
  }
}

struct UnderCase {
  std::string root;
  std::string path;
  bool ok;
  std::string want;
};

TEST(ValidatePathUnderTest, Table) {
  const std::vector<UnderCase> cases = {
      {"/srv", "/srv/jails", true, "/srv/jails"},
      {"/srv", "/srv/jails/web01/", true, "/srv/jails/web01"},
      {"/srv/", "/srv/jails", true, "/srv/jails"},
      {"/", "/etc", true, "/etc"},
      {"/srv", "/srv", false, ""},
      {"/srv", "/srv/", false, ""},
      {"/srv/", "/srv", false, ""},
      {"/", "/", false, ""},
      {"/srv", "/srvx", false, ""},
      {"/srv", "/srvx/jails", false, ""},
      {"/srv", "/etc/passwd", false, ""},
      {"/srv", "/", false, ""},
      {"/srv/jails", "/srv", false, ""},
      {"/srv", "/srv/../etc", false, ""},
      {"/srv", "/srv/jails/../../etc", false, ""},
      {"/srv", "srv/jails", false, ""},
      {"/srv", "jails", false, ""},
      {"srv", "/srv/jails", false, ""},         // invalid root
      {"/srv/../", "/srv/jails", false, ""},    // invalid root
  };
  for (const UnderCase& c : cases) {
    const absl::StatusOr<std::string> got = ValidatePathUnder("image path", c.root, c.path);
    EXPECT_EQ(got.ok(), c.ok) << c.root << " " << c.path << " -> " << got.status();
    if (c.ok && got.ok()) {
      EXPECT_EQ(*got, c.want) << c.root << " " << c.path;
    }
    if (!c.ok) {
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(got.status().message(), HasSubstr("image path"));
    }
  }
}

TEST(ValidatePathUnderTest, MessageNamesTheRoot) {
  const absl::StatusOr<std::string> got = ValidatePathUnder("image path", "/srv", "/srvx");
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(got.status().message(), HasSubstr("below \"/srv\""));
}

TEST(ValidateIpAddressTest, Table) {
  const std::vector<Case> cases = {
      {"192.0.2.1", true},
      {"0.0.0.0", true},
      {"255.255.255.255", true},
      {"::", true},
      {"::1", true},
      {"2001:db8::1", true},
      {"fe80::1", true},
      {"::ffff:192.0.2.1", true},
      {"2001:0db8:0000:0000:0000:0000:0000:0001", true},
      {"", false},
      {"256.1.1.1", false},
      {"1.2.3", false},
      {"1.2.3.4.5", false},
      {"01.2.3.4", false},
      {"1.2.3.4 ", false},
      {" 1.2.3.4", false},
      {"localhost", false},
      {"example.com", false},
      {"192.0.2.1/24", false},
      {"fe80::1%em0", false},
      {"fe80::1%1", false},
      {"[::1]", false},
      {"2001:db8::1::2", false},
      {"2001:db8:::1", false},
      {"1.2.3.4:80", false},
      {std::string("1.2.3.4\0", 8), false},
  };
  for (const Case& c : cases) {
    ExpectInvalidArgumentIfRejected(ValidateIpAddress("vip address", c.input), c);
  }
  EXPECT_THAT(ValidateIpAddress("vip address", "localhost").message(),
              HasSubstr("vip address"));
}

TEST(ValidateCidrTest, Table) {
  const std::vector<Case> cases = {
      {"192.0.2.0/24", true},
      {"192.0.2.1/32", true},
      {"0.0.0.0/0", true},
      {"2001:db8::/32", true},
      {"2001:db8::1/128", true},
      {"::/0", true},
      {"192.0.2.1/33", false},
      {"2001:db8::1/129", false},
      {"192.0.2.1", false},
      {"2001:db8::1", false},
      {"1.2.3.4/", false},
      {"/24", false},
      {"/", false},
      {"", false},
      {"1.2.3.4/024", false},
      {"1.2.3.4/00", false},
      {"1.2.3.4/+24", false},
      {"1.2.3.4/-1", false},
      {"1.2.3.4/ 24", false},
      {"1.2.3.4/24 ", false},
      {"1.2.3.4/2a", false},
      {"1.2.3.4/99999999999", false},
      {"1.2.3.4/24/24", false},
      {"256.0.0.0/8", false},
      {"example.com/24", false},
      {"fe80::1%em0/64", false},
  };
  for (const Case& c : cases) {
    ExpectInvalidArgumentIfRejected(ValidateCidr("vip cidr", c.input), c);
  }
  EXPECT_THAT(ValidateCidr("vip cidr", "192.0.2.1/33").message(), HasSubstr("vip cidr"));
  EXPECT_THAT(ValidateCidr("vip cidr", "192.0.2.1/33").message(), HasSubstr("0..32"));
  EXPECT_THAT(ValidateCidr("vip cidr", "::1/200").message(), HasSubstr("0..128"));
}

struct HostPortCase {
  std::string input;
  bool allow_port_zero;
  bool ok;
};

TEST(ValidateHostPortTest, Table) {
  const std::vector<HostPortCase> cases = {
      {"coordinator:7443", false, true},
      {"coord-1.example.com:7443", false, true},
      {"localhost:1", false, true},
      {"192.0.2.1:65535", false, true},
      {"0.0.0.0:7443", false, true},
      {"[::1]:7443", false, true},
      {"[2001:db8::1]:443", false, true},
      {"[::]:0", true, true},
      {"0.0.0.0:0", true, true},
      {"localhost:0", true, true},
      {"localhost:0", false, false},
      {"localhost:65536", false, false},
      {"localhost:65536", true, false},
      {"localhost:99999999999", false, false},
      {"localhost:", false, false},
      {"localhost", false, false},
      {":7443", false, false},
      {"", false, false},
      {"localhost:080", false, false},
      {"localhost:+80", false, false},
      {"localhost:-1", false, false},
      {"localhost:http", false, false},
      {"localhost:80 ", false, false},
      {"::1:7443", false, false},
      {"2001:db8::1:443", false, false},
      {"[::1]", false, false},
      {"[::1]:", false, false},
      {"[::1]7443", false, false},
      {"[::1:7443", false, false},
      {"[192.0.2.1]:80", false, false},
      {"[localhost]:80", false, false},
      {"[fe80::1%em0]:80", false, false},
      {"256.1.1.1:80", false, false},
      {"1.2.3:80", false, false},
      {"-bad.example.com:80", false, false},
      {"bad-.example.com:80", false, false},
      {"a..b:80", false, false},
      {"under_score:80", false, false},
      {"a b:80", false, false},
      {"http://host:80", false, false},
      {std::string(64, 'a') + ".com:80", false, false},
      {std::string(63, 'a') + ".com:80", false, true},
  };
  for (const HostPortCase& c : cases) {
    const absl::Status s = ValidateHostPort("--listen", c.input, c.allow_port_zero);
    EXPECT_EQ(s.ok(), c.ok) << Show(c.input) << " allow_port_zero=" << c.allow_port_zero
                            << " -> " << s;
    if (!c.ok) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << Show(c.input);
    }
  }
}

TEST(ValidateHostPortTest, DefaultRejectsPortZeroAndMessagesNameTheField) {
  EXPECT_FALSE(ValidateHostPort("--coordinator", "localhost:0").ok());
  EXPECT_THAT(ValidateHostPort("--coordinator", "localhost:0").message(),
              HasSubstr("--coordinator"));
  EXPECT_THAT(ValidateHostPort("--coordinator", "::1:7443").message(), HasSubstr("[ADDRESS]"));
}

TEST(ValidateInterfaceNameTest, Table) {
  const std::vector<Case> cases = {
      {"em0", true},
      {"vtnet0.100", true},
      {"lagg0", true},
      {"br-lan", true},
      {"carp_if", true},
      {std::string(15, 'i'), true},
      {std::string(16, 'i'), false},
      {"", false},
      {"em 0", false},
      {"em0/1", false},
      {"em0:1", false},
      {"\xc3\xa9m0", false},
  };
  for (const Case& c : cases) {
    ExpectInvalidArgumentIfRejected(ValidateInterfaceName("vip interface", c.input), c);
  }
  EXPECT_THAT(ValidateInterfaceName("vip interface", "").message(),
              HasSubstr("vip interface"));
}

struct RangeCase {
  int64_t value;
  bool ok;
};

TEST(CarpParametersTest, VhidBounds) {
  const std::vector<RangeCase> cases = {
      {1, true}, {255, true}, {100, true}, {0, false}, {256, false}, {-1, false},
      {INT64_MAX, false}, {INT64_MIN, false},
  };
  for (const RangeCase& c : cases) {
    const absl::Status s = ValidateVhid(c.value);
    EXPECT_EQ(s.ok(), c.ok) << c.value;
    if (!c.ok) {
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(s.message(), HasSubstr("vhid"));
    }
  }
}

TEST(CarpParametersTest, AdvbaseBounds) {
  const std::vector<RangeCase> cases = {
      {1, true}, {255, true}, {0, false}, {256, false}, {-5, false},
  };
  for (const RangeCase& c : cases) {
    const absl::Status s = ValidateAdvbase(c.value);
    EXPECT_EQ(s.ok(), c.ok) << c.value;
    if (!c.ok) {
      EXPECT_THAT(s.message(), HasSubstr("advbase"));
    }
  }
}

TEST(CarpParametersTest, AdvskewBounds) {
  const std::vector<RangeCase> cases = {
      {0, true}, {254, true}, {100, true}, {255, false}, {-1, false},
  };
  for (const RangeCase& c : cases) {
    const absl::Status s = ValidateAdvskew(c.value);
    EXPECT_EQ(s.ok(), c.ok) << c.value;
    if (!c.ok) {
      EXPECT_THAT(s.message(), HasSubstr("advskew"));
      EXPECT_THAT(s.message(), HasSubstr("0..254"));
    }
  }
}

TEST(ValidateOperationIdTest, Table) {
  const std::vector<Case> cases = {
      {"1b4e28ba-2fa1-11d2-883f-0016d3cca427", true},
      {"client:deploy.42_a", true},
      {"x", true},
      {std::string(64, 'o'), true},
      {std::string(65, 'o'), false},
      {"", false},
      {"op id", false},
      {"op/id", false},
      {"op\nid", false},
      {"\xc3\xa9t\xc3\xa9", false},
  };
  for (const Case& c : cases) {
    ExpectInvalidArgumentIfRejected(ValidateOperationId(c.input), c);
  }
  EXPECT_THAT(ValidateOperationId("").message(), HasSubstr("operation id"));
}

}  // namespace
}  // namespace jailover::common
