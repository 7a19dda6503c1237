#include "common/tls/x509.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/file/file_util.h"
#include "tests/testing/test_util.h"

namespace jailover::common {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

class X509Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new KeyAndCertificate(*MakeCa("test", kNow, absl::Hours(24 * 3650)));
    other_ca_ = new KeyAndCertificate(*MakeCa("other", kNow, absl::Hours(24 * 3650)));
  }
  static void TearDownTestSuite() {
    delete ca_;
    delete other_ca_;
  }

  static KeyAndCertificate Issue(const Identity& identity, std::vector<std::string> ips = {}) {
    IssueOptions options;
    options.identity = identity;
    options.ips = std::move(ips);
    absl::StatusOr<KeyAndCertificate> issued = IssueCertificate(*ca_, options, kNow);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? *issued : KeyAndCertificate{};
  }

  static KeyAndCertificate* ca_;
  static KeyAndCertificate* other_ca_;
};

KeyAndCertificate* X509Test::ca_ = nullptr;
KeyAndCertificate* X509Test::other_ca_ = nullptr;

TEST_F(X509Test, CaIsACa) {
  absl::StatusOr<CertificateInfo> info = ParseCertificate(ca_->cert_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->is_ca);
  EXPECT_THAT(info->subject, HasSubstr("jailover CA test"));
  EXPECT_EQ(info->subject, info->issuer);
  EXPECT_EQ(info->not_after, kNow + absl::Hours(24 * 3650));
  EXPECT_EQ(info->not_before, kNow - absl::Minutes(5));
  EXPECT_EQ(CertificateIdentity(*info).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(X509Test, AgentCertificateCarriesItsIdentityAndHostName) {
  const KeyAndCertificate agent = Issue({Role::kAgent, "h1"}, {"198.18.0.11"});
  absl::StatusOr<CertificateInfo> info = ParseCertificate(agent.cert_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_FALSE(info->is_ca);
  EXPECT_THAT(info->uris, ElementsAre("spiffe://jailover/agent/h1"));
  EXPECT_THAT(info->dns, ElementsAre("h1"));
  EXPECT_THAT(info->ips, ElementsAre("198.18.0.11"));
  EXPECT_THAT(info->sha256, HasSubstr(":"));
  absl::StatusOr<Identity> identity = CertificateIdentity(agent.cert_pem);
  ASSERT_TRUE(identity.ok()) << identity.status();
  EXPECT_EQ(*identity, (Identity{Role::kAgent, "h1"}));
}

TEST_F(X509Test, OperatorCertificateHasNoDnsName) {
  const KeyAndCertificate alice = Issue({Role::kOperator, "alice"});
  absl::StatusOr<CertificateInfo> info = ParseCertificate(alice.cert_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->dns.empty());
  EXPECT_THAT(info->uris, ElementsAre("spiffe://jailover/operator/alice"));
}

TEST_F(X509Test, OwnCertificateIsChecked) {
  const KeyAndCertificate agent = Issue({Role::kAgent, "h1"});
  const KeyAndCertificate other = Issue({Role::kAgent, "h2"});
  absl::StatusOr<Identity> own =
      CheckOwnCertificate(agent.cert_pem, agent.key_pem, ca_->cert_pem, kNow);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->name, "h1");

  absl::StatusOr<Identity> wrong_key =
      CheckOwnCertificate(agent.cert_pem, other.key_pem, ca_->cert_pem, kNow);
  EXPECT_THAT(wrong_key.status().message(), HasSubstr("not the private key"));
  absl::StatusOr<Identity> wrong_ca =
      CheckOwnCertificate(agent.cert_pem, agent.key_pem, other_ca_->cert_pem, kNow);
  EXPECT_THAT(wrong_ca.status().message(), HasSubstr("does not verify against the CA"));
  absl::StatusOr<Identity> expired = CheckOwnCertificate(
      agent.cert_pem, agent.key_pem, ca_->cert_pem, kNow + absl::Hours(24 * 366));
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));
  absl::StatusOr<Identity> no_identity =
      CheckOwnCertificate(ca_->cert_pem, ca_->key_pem, ca_->cert_pem, kNow);
  EXPECT_THAT(no_identity.status().message(), HasSubstr("carries no jailover identity"));
}

TEST_F(X509Test, BadIssueRequestsAreRefused) {
  IssueOptions options;
  options.identity = {Role::kAgent, "../h1"};
  EXPECT_EQ(IssueCertificate(*ca_, options, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.identity = {Role::kAgent, "h1"};
  options.ips = {"not-an-ip"};
  EXPECT_EQ(IssueCertificate(*ca_, options, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.ips.clear();
  options.dns = {"bad name"};
  EXPECT_EQ(IssueCertificate(*ca_, options, kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.dns.clear();
  // A leaf is no CA, and a CA with another CA's key signs nothing.
  const KeyAndCertificate leaf = Issue({Role::kAgent, "h1"});
  EXPECT_THAT(IssueCertificate(leaf, options, kNow).status().message(), HasSubstr("not a CA"));
  const KeyAndCertificate mixed{other_ca_->key_pem, ca_->cert_pem};
  EXPECT_THAT(IssueCertificate(mixed, options, kNow).status().message(),
              HasSubstr("not the key of the CA certificate"));
  EXPECT_EQ(ParseCertificate("not pem").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(X509Test, KeyAndCertificateAreWrittenWithTheirModesAndNotReplacedUnlessAsked) {
  testing::ScopedTempDir dir("x509_test");
  const std::string base = dir.path() + "/agent-h1";
  const KeyAndCertificate first = Issue({Role::kAgent, "h1"});
  ASSERT_TRUE(WriteKeyAndCertificate(base, first, /*replace=*/false).ok());
  auto mode = [](const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 0777;
  };
  EXPECT_EQ(mode(base + ".key"), 0600u);
  EXPECT_EQ(mode(base + ".pem"), 0644u);
  EXPECT_EQ(*ReadFileToString(base + ".key", 1 << 20), first.key_pem);
  EXPECT_EQ(*ReadFileToString(base + ".pem", 1 << 20), first.cert_pem);

  const KeyAndCertificate second = Issue({Role::kAgent, "h1"});
  const absl::Status refused = WriteKeyAndCertificate(base, second, /*replace=*/false);
  EXPECT_TRUE(absl::IsAlreadyExists(refused)) << refused;
  EXPECT_THAT(refused.message(), HasSubstr(base + ".pem or " + base + ".key exists"));
  EXPECT_EQ(*ReadFileToString(base + ".pem", 1 << 20), first.cert_pem);

  ASSERT_TRUE(WriteKeyAndCertificate(base, second, /*replace=*/true).ok());
  EXPECT_EQ(*ReadFileToString(base + ".key", 1 << 20), second.key_pem);
  EXPECT_EQ(*ReadFileToString(base + ".pem", 1 << 20), second.cert_pem);
  EXPECT_EQ(mode(base + ".key"), 0600u);
}

}  // namespace
}  // namespace jailover::common
