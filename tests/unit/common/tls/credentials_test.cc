#include "common/tls/credentials.h"

#include <grpcpp/channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace jailover::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kOpenssl = testing::kOpensslBin;
constexpr char kFakePem[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  ASSERT_TRUE(out.good()) << path;
}

// ValidateTlsOptions on files that look like PEM (it does not parse them).
class TlsOptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("tls_options_test");
    cert_ = dir_ + "/cert.pem";
    key_ = dir_ + "/key.pem";
    ca_ = dir_ + "/ca.pem";
    not_pem_ = dir_ + "/not.pem";
    absent_ = dir_ + "/absent.pem";
    WriteFile(cert_, kFakePem);
    WriteFile(key_, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    WriteFile(ca_, kFakePem);
    WriteFile(not_pem_, "just some text\n");
  }

  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_, cert_, key_, ca_, not_pem_, absent_;
};

struct OptionsCase {
  std::string description;
  TlsOptions options;
  absl::StatusCode code;
  std::vector<std::string> message_has;
  std::vector<std::string> message_lacks;
};

TEST_F(TlsOptionsTest, Table) {
  const std::string kInsecureHint = "or pass --insecure (development only)";
  const std::string kCombined = "--insecure cannot be combined with --tls_cert/--tls_key/--tls_ca";
  const std::vector<OptionsCase> cases = {
      {"insecure alone", {"", "", "", true, ""}, absl::StatusCode::kOk, {}, {}},
      {"all three files", {cert_, key_, ca_, false, ""}, absl::StatusCode::kOk, {}, {}},
      {"all three files and override", {cert_, key_, ca_, false, "agent1"},
       absl::StatusCode::kOk, {}, {}},
      {"nothing at all", {}, absl::StatusCode::kInvalidArgument,
       {"--tls_cert", "--tls_key", "--tls_ca", kInsecureHint}, {}},
      {"cert only", {cert_, "", "", false, ""}, absl::StatusCode::kInvalidArgument,
       {"missing --tls_key, --tls_ca", kInsecureHint}, {"missing --tls_cert"}},
      {"no key", {cert_, "", ca_, false, ""}, absl::StatusCode::kInvalidArgument,
       {"missing --tls_key:", kInsecureHint}, {}},
      {"no ca", {cert_, key_, "", false, ""}, absl::StatusCode::kInvalidArgument,
       {"missing --tls_ca:", kInsecureHint}, {}},
      {"no cert", {"", key_, ca_, false, ""}, absl::StatusCode::kInvalidArgument,
       {"missing --tls_cert:", kInsecureHint}, {}},
      {"insecure with cert", {cert_, "", "", true, ""}, absl::StatusCode::kInvalidArgument,
       {kCombined}, {}},
      {"insecure with key", {"", key_, "", true, ""}, absl::StatusCode::kInvalidArgument,
       {kCombined}, {}},
      {"insecure with ca", {"", "", ca_, true, ""}, absl::StatusCode::kInvalidArgument,
       {kCombined}, {}},
      {"insecure with all", {cert_, key_, ca_, true, ""}, absl::StatusCode::kInvalidArgument,
       {kCombined}, {}},
      {"cert missing on disk", {absent_, key_, ca_, false, ""}, absl::StatusCode::kNotFound,
       {"--tls_cert", absent_}, {}},
      {"key missing on disk", {cert_, absent_, ca_, false, ""}, absl::StatusCode::kNotFound,
       {"--tls_key", absent_}, {}},
      {"ca missing on disk", {cert_, key_, absent_, false, ""}, absl::StatusCode::kNotFound,
       {"--tls_ca", absent_}, {}},
      {"cert is a directory", {dir_, key_, ca_, false, ""}, absl::StatusCode::kNotFound,
       {"--tls_cert", dir_}, {}},
      {"cert not PEM", {not_pem_, key_, ca_, false, ""}, absl::StatusCode::kInvalidArgument,
       {"--tls_cert", not_pem_, "-----BEGIN "}, {}},
      {"key not PEM", {cert_, not_pem_, ca_, false, ""}, absl::StatusCode::kInvalidArgument,
       {"--tls_key", not_pem_}, {}},
      {"ca not PEM", {cert_, key_, not_pem_, false, ""}, absl::StatusCode::kInvalidArgument,
       {"--tls_ca", not_pem_}, {}},
      // Another set of flags (the coordinator's TLS to etcd) is named as such.
      {"other flags, no key",
       {cert_, "", ca_, false, "", "--etcd_tls_", "or none of them (plaintext)"},
       absl::StatusCode::kInvalidArgument,
       {"missing --etcd_tls_key: mutual TLS needs --etcd_tls_cert, --etcd_tls_key and "
        "--etcd_tls_ca; or none of them (plaintext)"},
       {"--tls_", "--insecure"}},
      {"other flags, ca not PEM", {cert_, key_, not_pem_, false, "", "--etcd_tls_", ""},
       absl::StatusCode::kInvalidArgument, {"--etcd_tls_ca ", not_pem_}, {"--tls_"}},
  };
  for (const OptionsCase& c : cases) {
    SCOPED_TRACE(c.description);
    const absl::Status s = ValidateTlsOptions(c.options);
    EXPECT_EQ(s.code(), c.code) << s;
    for (const std::string& part : c.message_has) EXPECT_THAT(s.message(), HasSubstr(part));
    for (const std::string& part : c.message_lacks) {
      EXPECT_THAT(s.message(), Not(HasSubstr(part)));
    }
  }
}

TEST_F(TlsOptionsTest, FactoriesReturnTheValidationError) {
  const TlsOptions bad{cert_, "", ca_, false, ""};
  EXPECT_EQ(MakeServerCredentials(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeChannelCredentials(bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeChannel("localhost:7443", bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  const TlsOptions absent{absent_, key_, ca_, false, ""};
  EXPECT_EQ(MakeServerCredentials(absent).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MakeChannel("localhost:7443", absent).status().code(), absl::StatusCode::kNotFound);
}

TEST(TlsInsecureTest, InsecureCredentialsAndChannel) {
  TlsOptions options;
  options.insecure = true;
  const auto server = MakeServerCredentials(options);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(*server, nullptr);
  const auto client = MakeChannelCredentials(options);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_NE(*client, nullptr);
  const auto channel = MakeChannel("localhost:7443", options);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_NE(*channel, nullptr);
}

TEST(TlsInsecureTest, EmptyTargetIsRejected) {
  TlsOptions options;
  options.insecure = true;
  EXPECT_EQ(MakeChannel("", options).status().code(), absl::StatusCode::kInvalidArgument);
}

using Pki = testing::TestPki;

class TlsCredentialsTest : public ::testing::Test {
 protected:
  // The PKI is made once for all tests; openssl key generation is the slow
  // part of this binary.
  static void SetUpTestSuite() {
    if (access(kOpenssl, X_OK) != 0) return;
    absl::StatusOr<Pki> pki = testing::MakeTestPki();
    if (pki.ok()) {
      pki_ = new Pki(*std::move(pki));
    } else {
      pki_error_ = new absl::Status(pki.status());
    }
  }

  static void TearDownTestSuite() {
    std::error_code ignored;
    if (pki_ != nullptr) std::filesystem::remove_all(pki_->dir, ignored);
    delete pki_;
    pki_ = nullptr;
    delete pki_error_;
    pki_error_ = nullptr;
  }

  void SetUp() override {
    if (access(kOpenssl, X_OK) != 0) {
      GTEST_SKIP() << kOpenssl << " is not installed; cannot make test certificates";
    }
    ASSERT_EQ(pki_error_, nullptr) << "making test certificates: " << *pki_error_;
    ASSERT_NE(pki_, nullptr);
  }

  static TlsOptions ServerOptions() {
    return TlsOptions{pki_->server_cert, pki_->server_key, pki_->ca, false, ""};
  }
  static TlsOptions ClientOptions(const std::string& override_name) {
    return TlsOptions{pki_->client_cert, pki_->client_key, pki_->ca, false, override_name};
  }

  // Starts a server on 127.0.0.1 (loopback only) that answers every method
  // with UNIMPLEMENTED, and returns its port.
  int StartServer(const TlsOptions& options) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(options);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    if (!credentials.ok()) return 0;
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port);
    builder.RegisterCallbackGenericService(&service_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_GT(port, 0);
    return port;
  }

  // Waits until the channel is READY or has failed (TRANSIENT_FAILURE).
  static grpc_connectivity_state Settle(grpc::Channel& channel) {
    const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(20);
    grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY && state != GRPC_CHANNEL_TRANSIENT_FAILURE) {
      if (!channel.WaitForStateChange(state, deadline)) break;
      state = channel.GetState(/*try_to_connect=*/true);
    }
    return state;
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  static Pki* pki_;
  static absl::Status* pki_error_;
  grpc::CallbackGenericService service_;  // must outlive server_
  std::unique_ptr<grpc::Server> server_;
};

Pki* TlsCredentialsTest::pki_ = nullptr;
absl::Status* TlsCredentialsTest::pki_error_ = nullptr;

TEST_F(TlsCredentialsTest, RealFilesPassValidation) {
  EXPECT_TRUE(ValidateTlsOptions(ServerOptions()).ok());
  EXPECT_TRUE(ValidateTlsOptions(ClientOptions("localhost")).ok());
}

TEST_F(TlsCredentialsTest, CredentialsAreCreatedFromRealFiles) {
  const auto server = MakeServerCredentials(ServerOptions());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(*server, nullptr);
  const auto client = MakeChannelCredentials(ClientOptions(""));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_NE(*client, nullptr);
  const auto channel = MakeChannel("localhost:7443", ClientOptions("localhost"));
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_NE(*channel, nullptr);
}

TEST_F(TlsCredentialsTest, MutualTlsHandshakeOverLoopback) {
  const int port = StartServer(ServerOptions());
  ASSERT_GT(port, 0);
  const auto channel =
      MakeChannel(absl::StrCat("127.0.0.1:", port), ClientOptions("localhost"));
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Settle(**channel), GRPC_CHANNEL_READY);
}

TEST_F(TlsCredentialsTest, ServerNameOverrideIsNeededForAnIpTarget) {
  // The server certificate names only DNS:localhost, so without the
  // override the client must refuse 127.0.0.1.
  const int port = StartServer(ServerOptions());
  ASSERT_GT(port, 0);
  const auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), ClientOptions(""));
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Settle(**channel), GRPC_CHANNEL_TRANSIENT_FAILURE);
}

TEST_F(TlsCredentialsTest, ServerRejectsClientCertificateFromAnotherCa) {
  const int port = StartServer(ServerOptions());
  ASSERT_GT(port, 0);
  // The rogue client trusts our CA (so it accepts the server) but presents
  // a certificate our CA did not sign.
  const TlsOptions rogue{pki_->rogue_cert, pki_->rogue_key, pki_->ca, false, "localhost"};
  const auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), rogue);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Settle(**channel), GRPC_CHANNEL_TRANSIENT_FAILURE);
}

TEST_F(TlsCredentialsTest, ClientRejectsServerFromAnotherCa) {
  const int port = StartServer(ServerOptions());
  ASSERT_GT(port, 0);
  const TlsOptions wrong_ca{pki_->client_cert, pki_->client_key, pki_->rogue_ca, false,
                            "localhost"};
  const auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), wrong_ca);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Settle(**channel), GRPC_CHANNEL_TRANSIENT_FAILURE);
}

TEST_F(TlsCredentialsTest, InsecureClientCannotTalkToTlsServer) {
  const int port = StartServer(ServerOptions());
  ASSERT_GT(port, 0);
  TlsOptions insecure;
  insecure.insecure = true;
  const auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), insecure);
  ASSERT_TRUE(channel.ok()) << channel.status();
  EXPECT_EQ(Settle(**channel), GRPC_CHANNEL_TRANSIENT_FAILURE);
}

}  // namespace
}  // namespace jailover::common
