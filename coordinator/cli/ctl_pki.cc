// `jailoverctl pki`: the cluster's certificates (docs/security.md). No
// coordinator is dialled; everything happens in --dir.
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file/file_util.h"
#include "common/tls/x509.h"
#include "coordinator/cli/ctl.h"
#include "coordinator/cli/ctl_commands.h"

namespace jailover::cli {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

int Fail(const CommandContext& ctx, absl::string_view message) {
  ctx.err << "jailoverctl: " << message << "\n";
  return kExitError;
}

// Creates `dir` if missing, private to its owner (it holds keys).
absl::Status EnsureKeyDir(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::exists(dir, error)) {
    std::filesystem::create_directories(dir, error);
    if (error) return absl::InternalError(absl::StrCat(dir, ": cannot create: ", error.message()));
    if (chmod(dir.c_str(), 0700) != 0) {
      return absl::InternalError(absl::StrCat(dir, ": cannot chmod 0700"));
    }
  }
  return absl::OkStatus();
}

// common::WriteKeyAndCertificate, with the hint that --force replaces.
absl::Status WritePair(const std::string& base, const common::KeyAndCertificate& pair,
                       bool replace) {
  absl::Status written = common::WriteKeyAndCertificate(base, pair, replace);
  if (absl::IsAlreadyExists(written)) {
    return absl::AlreadyExistsError(
        absl::StrCat(written.message(), "; pass --force to replace them (renewal)"));
  }
  return written;
}

absl::Duration Days(uint32_t days) { return absl::Hours(24) * static_cast<int64_t>(days); }

void Describe(std::ostream& out, const common::CertificateInfo& info) {
  absl::StatusOr<common::Identity> identity = common::CertificateIdentity(info);
  out << "subject:      " << info.subject << "\n"
      << "identity:     "
      << (identity.ok() ? absl::StrCat(common::IdentityString(*identity), " (",
                                       common::IdentityUri(*identity), ")")
                        : absl::StrCat("none: ", identity.status().message()))
      << "\n"
      << "is CA:        " << (info.is_ca ? "yes" : "no") << "\n"
      << "DNS names:    " << absl::StrJoin(info.dns, ", ") << "\n"
      << "IP addresses: " << absl::StrJoin(info.ips, ", ") << "\n"
      << "issuer:       " << info.issuer << "\n"
      << "not before:   "
      << absl::FormatTime(absl::RFC3339_sec, info.not_before, absl::UTCTimeZone()) << "\n"
      << "not after:    "
      << absl::FormatTime(absl::RFC3339_sec, info.not_after, absl::UTCTimeZone()) << "\n"
      << "serial:       " << info.serial << "\n"
      << "sha256:       " << info.sha256 << "\n";
}

}  // namespace

int RunPkiInit(const CommandContext& ctx, const CommandArgs& args) {
  if (absl::Status ok = EnsureKeyDir(args.dir); !ok.ok()) return Fail(ctx, ok.message());
  absl::StatusOr<common::KeyAndCertificate> ca =
      common::MakeCa(args.name.empty() ? "cluster" : args.name, absl::Now(), Days(args.days));
  if (!ca.ok()) return Fail(ctx, ca.status().message());
  const std::string base = args.dir + "/ca";
  if (absl::Status ok = WritePair(base, *ca, args.force); !ok.ok()) {
    return Fail(ctx, ok.message());
  }
  ctx.out << "CA: " << base << ".pem (certificate, give to every host and operator)\n"
          << "    " << base << ".key (private key, 0600: keep it off the cluster's hosts)\n";
  return kExitOk;
}

int RunPkiIssue(const CommandContext& ctx, const CommandArgs& args) {
  absl::StatusOr<common::Role> role = common::ParseRole(args.role);
  if (!role.ok()) return Fail(ctx, role.status().message());
  common::KeyAndCertificate ca;
  absl::StatusOr<std::string> text = common::ReadFileToString(args.dir + "/ca.pem", kMaxPemBytes);
  if (!text.ok()) return Fail(ctx, absl::StrCat("CA certificate: ", text.status().message()));
  ca.cert_pem = *std::move(text);
  text = common::ReadFileToString(args.dir + "/ca.key", kMaxPemBytes);
  if (!text.ok()) return Fail(ctx, absl::StrCat("CA key: ", text.status().message()));
  ca.key_pem = *std::move(text);
  common::IssueOptions options;
  options.identity = common::Identity{*role, args.name};
  options.dns = args.dns;
  options.ips = args.ips;
  options.validity = Days(args.days);
  absl::StatusOr<common::KeyAndCertificate> issued =
      common::IssueCertificate(ca, options, absl::Now());
  if (!issued.ok()) return Fail(ctx, issued.status().message());
  const std::string base = absl::StrCat(args.dir, "/", args.role, "-", args.name);
  if (absl::Status ok = WritePair(base, *issued, args.force); !ok.ok()) {
    return Fail(ctx, ok.message());
  }
  ctx.out << common::IdentityString(options.identity) << ": " << base << ".pem, " << base
          << ".key (0600), valid " << args.days << " days\n";
  return kExitOk;
}

int RunPkiShow(const CommandContext& ctx, const CommandArgs& args) {
  absl::StatusOr<std::string> text = common::ReadFileToString(args.name, kMaxPemBytes);
  if (!text.ok()) return Fail(ctx, text.status().message());
  absl::StatusOr<common::CertificateInfo> info = common::ParseCertificate(*text);
  if (!info.ok()) return Fail(ctx, absl::StrCat(args.name, ": ", info.status().message()));
  Describe(ctx.out, *info);
  return kExitOk;
}

}  // namespace jailover::cli
