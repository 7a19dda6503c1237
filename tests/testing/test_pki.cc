#include "tests/testing/test_pki.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/exec/command_runner.h"
#include "common/status/status_macros.h"
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

}  // namespace jailover::testing
