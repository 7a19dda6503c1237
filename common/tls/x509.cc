#include "common/tls/x509.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::common {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct NamesFree {
  void operator()(GENERAL_NAMES* names) const { GENERAL_NAMES_free(names); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* ctx) const { X509_STORE_CTX_free(ctx); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* ext) const { X509_EXTENSION_free(ext); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

// The oldest error on this thread's OpenSSL queue, as text, and clears it.
std::string OpensslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "no detail";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

Bio MemoryBio(absl::string_view data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<size_t>(size)) : std::string();
}

absl::StatusOr<Cert> ReadCertificate(absl::string_view pem) {
  Bio bio = MemoryBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no PEM certificate that parses (", OpensslError(), ")"));
  }
  return cert;
}

absl::StatusOr<Key> ReadKey(absl::string_view pem) {
  Bio bio = MemoryBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no unencrypted PEM private key that parses (", OpensslError(), ")"));
  }
  return key;
}

std::string NameText(const X509_NAME* name) {
  Bio bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  return BioText(bio.get());
}

absl::Time AsnTime(const ASN1_TIME* time) {
  struct tm parts = {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return absl::InfinitePast();
  return absl::FromTM(parts, absl::UTCTimeZone());
}

std::string Hex(const unsigned char* data, size_t size, absl::string_view separator) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::vector<std::string> bytes;
  for (size_t i = 0; i < size; ++i) {
    bytes.push_back({kDigits[data[i] >> 4], kDigits[data[i] & 0xf]});
  }
  return absl::StrJoin(bytes, separator);
}

std::string IpText(const ASN1_OCTET_STRING* ip) {
  const unsigned char* bytes = ASN1_STRING_get0_data(ip);
  const int size = ASN1_STRING_length(ip);
  if (size == 4) return absl::StrCat(bytes[0], ".", bytes[1], ".", bytes[2], ".", bytes[3]);
  return Hex(bytes, static_cast<size_t>(size), "");
}

CertificateInfo Describe(X509* cert) {
  CertificateInfo info;
  info.subject = NameText(X509_get_subject_name(cert));
  info.issuer = NameText(X509_get_issuer_name(cert));
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      info.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  info.not_before = AsnTime(X509_get0_notBefore(cert));
  info.not_after = AsnTime(X509_get0_notAfter(cert));
  info.is_ca = X509_check_ca(cert) > 0;
  std::unique_ptr<GENERAL_NAMES, NamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_URI || name->type == GEN_DNS) {
      const ASN1_IA5STRING* text =
          name->type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
      std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                        static_cast<size_t>(ASN1_STRING_length(text)));
      (name->type == GEN_URI ? info.uris : info.dns).push_back(std::move(value));
    } else if (name->type == GEN_IPADD) {
      info.ips.push_back(IpText(name->d.iPAddress));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &digest_size) == 1) {
    info.sha256 = Hex(digest, digest_size, ":");
  }
  return info;
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

absl::Status Failed(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpensslError()));
}

// Adds one v3 extension, written as in openssl.cnf (`value`), to `cert`.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate extension \"", value, "\": ", OpensslError()));
  }
  return absl::OkStatus();
}

// A new certificate for `key`, named CN=`common_name`, valid from five
// minutes before `now` (clocks differ) for `validity`, with a random
// 128-bit serial. Issuer and signature are the caller's.
absl::StatusOr<Cert> NewCertificate(EVP_PKEY* key, const std::string& common_name, absl::Time now,
                                    absl::Duration validity) {
  Cert cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), 2) != 1) return Failed("X509_new");
  BIGNUM* serial = BN_new();
  if (serial == nullptr || BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) == nullptr) {
    BN_free(serial);
    return Failed("serial number");
  }
  BN_free(serial);
  const time_t start = absl::ToTimeT(now - absl::Minutes(5));
  const time_t end = absl::ToTimeT(now + validity);
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), start) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), end) == nullptr) {
    return Failed("validity");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return Failed("subject");
  }
  return cert;
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("EC P-256 key generation");
  return key;
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return Failed("signing");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CertificateInfo> ParseCertificate(absl::string_view pem) {
  ASSIGN_OR_RETURN(Cert cert, ReadCertificate(pem));
  return Describe(cert.get());
}

absl::StatusOr<Identity> CertificateIdentity(const CertificateInfo& certificate) {
  std::vector<Identity> found;
  for (const std::string& uri : certificate.uris) {
    absl::string_view view(uri);
    if (view.substr(0, std::string_view(kIdentityScheme).size()) != kIdentityScheme) continue;
    ASSIGN_OR_RETURN(Identity identity, ParseIdentityUri(uri));
    found.push_back(std::move(identity));
  }
  if (found.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate ", certificate.subject, " carries no jailover identity (a URI ",
                     "subject alternative name ", kIdentityScheme,
                     "ROLE/NAME); issue one with `jailoverctl pki issue`"));
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("certificate ", certificate.subject, " carries ",
                                                   found.size(),
                                                   " jailover identities; it must carry one"));
  }
  return found.front();
}

absl::StatusOr<Identity> CertificateIdentity(absl::string_view pem) {
  ASSIGN_OR_RETURN(CertificateInfo info, ParseCertificate(pem));
  return CertificateIdentity(info);
}

absl::Status WriteKeyAndCertificate(const std::string& base, const KeyAndCertificate& pair,
                                    bool replace) {
  const std::string key = base + ".key";
  const std::string cert = base + ".pem";
  std::error_code error;
  if (!replace && (std::filesystem::exists(key, error) || std::filesystem::exists(cert, error))) {
    return absl::AlreadyExistsError(absl::StrCat(cert, " or ", key, " exists"));
  }
  RETURN_IF_ERROR(WriteFileAtomically(key, pair.key_pem, 0600));
  return WriteFileAtomically(cert, pair.cert_pem, 0644);
}

absl::StatusOr<KeyAndCertificate> MakeCa(absl::string_view name, absl::Time now,
                                         absl::Duration validity) {
  RETURN_IF_ERROR(ValidateName("CA name", name));
  ASSIGN_OR_RETURN(Key key, NewKey());
  ASSIGN_OR_RETURN(Cert cert,
                   NewCertificate(key.get(), absl::StrCat("jailover CA ", name), now, validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return Failed("issuer");
  }
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(Sign(cert.get(), key.get()));
  return KeyAndCertificate{KeyPem(key.get()), CertPem(cert.get())};
}

absl::StatusOr<KeyAndCertificate> IssueCertificate(const KeyAndCertificate& ca,
                                                   const IssueOptions& options, absl::Time now) {
  const Identity& identity = options.identity;
  RETURN_IF_ERROR(ValidateName(absl::StrCat(RoleName(identity.role), " name"), identity.name));
  ASSIGN_OR_RETURN(Cert ca_cert, ReadCertificate(ca.cert_pem));
  ASSIGN_OR_RETURN(Key ca_key, ReadKey(ca.key_pem));
  if (X509_check_ca(ca_cert.get()) <= 0) {
    return absl::InvalidArgumentError("the CA certificate is not a CA (basicConstraints CA:TRUE)");
  }
  if (X509_check_private_key(ca_cert.get(), ca_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CA key is not the key of the CA certificate");
  }
  std::vector<std::string> names = {absl::StrCat("URI:", IdentityUri(identity))};
  std::vector<std::string> dns = options.dns;
  if (identity.role == Role::kCoordinator || identity.role == Role::kAgent) {
    dns.insert(dns.begin(), identity.name);
  }
  for (const std::string& name : dns) {
    RETURN_IF_ERROR(ValidateHostPort("DNS name", absl::StrCat(name, ":1")));
    if (name.find('[') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("DNS name \"", name, "\": not a DNS name"));
    }
    names.push_back(absl::StrCat("DNS:", name));
  }
  for (const std::string& ip : options.ips) {
    RETURN_IF_ERROR(ValidateIpAddress("IP address", ip));
    names.push_back(absl::StrCat("IP:", ip));
  }
  if (options.validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("validity must be positive");
  }
  ASSIGN_OR_RETURN(Key key, NewKey());
  ASSIGN_OR_RETURN(
      Cert cert,
      NewCertificate(key.get(), absl::StrCat(RoleName(identity.role), " ", identity.name), now,
                     options.validity));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1) {
    return Failed("issuer");
  }
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name, absl::StrJoin(names, ",")));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_subject_key_identifier, "hash"));
  RETURN_IF_ERROR(
      AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always"));
  RETURN_IF_ERROR(Sign(cert.get(), ca_key.get()));
  return KeyAndCertificate{KeyPem(key.get()), CertPem(cert.get())};
}

absl::StatusOr<Identity> CheckOwnCertificate(absl::string_view cert_pem, absl::string_view key_pem,
                                             absl::string_view ca_pem, absl::Time now) {
  ASSIGN_OR_RETURN(Cert cert, ReadCertificate(cert_pem));
  ASSIGN_OR_RETURN(Key key, ReadKey(key_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the key is not the private key of the certificate");
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  Bio bio = MemoryBio(ca_pem);
  int cas = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store.get(), ca);
    X509_free(ca);
    ++cas;
  }
  ERR_clear_error();  // the end of the bundle reads as an error
  if (cas == 0) return absl::InvalidArgumentError("the CA bundle holds no certificate");
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  // Intermediate certificates, if the chain file has any after the leaf.
  STACK_OF(X509)* chain = sk_X509_new_null();
  Bio chain_bio = MemoryBio(cert_pem);
  if (X509* leaf = PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr)) X509_free(leaf);
  while (X509* intermediate = PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(chain, intermediate);
  }
  ERR_clear_error();
  X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), chain);
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  const bool verified = X509_verify_cert(ctx.get()) == 1;
  const int error = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_pop_free(chain, X509_free);
  if (!verified) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "the certificate does not verify against the CA: ", X509_verify_cert_error_string(error)));
  }
  return CertificateIdentity(Describe(cert.get()));
}

}  // namespace jailover::common
