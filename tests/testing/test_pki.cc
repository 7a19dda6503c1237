#include "tests/testing/test_pki.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/exec/command_runner.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"
#include "common/tls/x509.h"
#include "tests/testing/test_util.h"

namespace jailover::testing {
namespace {

using common::CommandOptions;
using common::CommandResult;
using common::FormatArgv;
using common::SubprocessCommandRunner;

constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
)";

class PkiBuilder {
 public:
  explicit PkiBuilder(std::string dir) : dir_(std::move(dir)) {}

  absl::Status Run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kOpensslBin};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.timeout = absl::Seconds(60);
    options.working_dir = dir_;
    absl::StatusOr<CommandResult> result = runner_.Run(argv, options);
    if (!result.ok()) return result.status();
    if (!result->ok()) {
      return absl::InternalError(
          absl::StrCat(FormatArgv(argv), ": exit ", result->exit_code, ": ", result->stderr_text));
    }
    return absl::OkStatus();
  }

  // Makes NAME.pem and NAME.key: a self-signed CA.
  absl::Status MakeCa(const std::string& name) {
    return Run({"req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                name + ".key",
                "-out",
                name + ".pem",
                "-days",
                "2",
                "-subj",
                "/CN=" + name,
                "-config",
                "openssl.cnf",
                "-extensions",
                "v3_ca"});
  }

  // Makes NAME.pem and NAME.key: a leaf signed by CA.pem/CA.key.
  absl::Status MakeLeaf(const std::string& name, const std::string& ca, int serial) {
    RETURN_IF_ERROR(Run({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                         "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj",
                         "/CN=" + name, "-config", "openssl.cnf"}));
    return Run({"x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                "-set_serial", std::to_string(serial), "-days", "2", "-out", name + ".pem",
                "-extfile", "openssl.cnf", "-extensions", "v3_leaf"});
  }

 private:
  std::string dir_;
  SubprocessCommandRunner runner_;
};

}  // namespace

absl::StatusOr<TestPki> MakeTestPki() {
  TestPki pki;
  pki.dir = MakeTempDir("tls_pki");
  {
    std::ofstream cnf(pki.dir + "/openssl.cnf");
    cnf << kOpensslConfig;
    if (!cnf.good()) return absl::InternalError("cannot write openssl.cnf");
  }
  PkiBuilder builder(pki.dir);
  RETURN_IF_ERROR(builder.MakeCa("ca"));
  RETURN_IF_ERROR(builder.MakeLeaf("server", "ca", 2));
  RETURN_IF_ERROR(builder.MakeLeaf("client", "ca", 3));
  RETURN_IF_ERROR(builder.MakeCa("rogue-ca"));
  RETURN_IF_ERROR(builder.MakeLeaf("rogue", "rogue-ca", 4));
  pki.ca = pki.dir + "/ca.pem";
  pki.server_cert = pki.dir + "/server.pem";
  pki.server_key = pki.dir + "/server.key";
  pki.client_cert = pki.dir + "/client.pem";
  pki.client_key = pki.dir + "/client.key";
  pki.rogue_ca = pki.dir + "/rogue-ca.pem";
  pki.rogue_cert = pki.dir + "/rogue.pem";
  pki.rogue_key = pki.dir + "/rogue.key";
  return pki;
}

absl::StatusOr<CertFiles> TestPki::Issue(const common::Identity& identity,
                                         const std::vector<std::string>& dns,
                                         const std::vector<std::string>& ips, bool rogue) const {
  const std::string ca_name = rogue ? "rogue-ca" : "ca";
  common::KeyAndCertificate ca_files;
  ASSIGN_OR_RETURN(ca_files.cert_pem,
                   common::ReadFileToString(dir + "/" + ca_name + ".pem", 1 << 20));
  ASSIGN_OR_RETURN(ca_files.key_pem,
                   common::ReadFileToString(dir + "/" + ca_name + ".key", 1 << 20));
  common::IssueOptions options;
  options.identity = identity;
  options.dns = dns;
  options.ips = ips;
  options.validity = absl::Hours(48);
  ASSIGN_OR_RETURN(common::KeyAndCertificate issued,
                   common::IssueCertificate(ca_files, options, absl::Now()));
  const std::string base = absl::StrCat(dir, "/", common::RoleName(identity.role), "-",
                                        identity.name, rogue ? "-rogue" : "");
  CertFiles files{base + ".pem", base + ".key"};
  RETURN_IF_ERROR(common::WriteFileAtomically(files.cert, issued.cert_pem));
  RETURN_IF_ERROR(common::WriteFileAtomically(files.key, issued.key_pem, 0600));
  return files;
}

common::TlsOptions TestPki::Options(const CertFiles& files, const std::string& server_name) const {
  common::TlsOptions options;
  options.cert_file = files.cert;
  options.key_file = files.key;
  options.ca_file = ca;
  options.server_name_override = server_name;
  return options;
}

}  // namespace jailover::testing
