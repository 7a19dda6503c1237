#include "coordinator/cli/spec_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/config/yaml_loader.h"
#include "common/file/file_util.h"
#include "common/status/status_macros.h"
#include "common/validation/validation.h"

namespace jailover::cli {
namespace {

// Also bounds parsing: at worst yaml-cpp needs ~0.5 GB and ~2 s for 1 MiB
// (yaml_loader.h); a real file of hundreds of jails is tens of KiB.
constexpr size_t kMaxSpecFileBytes = 1 << 20;
constexpr size_t kMaxPasswordFileBytes = 4096;

// The keys of one YAML mapping with their nodes, checked against the keys
// allowed there. Built only from a node known to be a map.
struct Field {
  YAML::Node key;
  YAML::Node value;
};

// Parses the documents of one file. Every helper returns a Status; the
// caller catches yaml-cpp's exceptions around the whole run.
class Parser {
 public:
  Parser(std::string file, std::string base_dir, SpecFileOptions options)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), options_(options) {}

  absl::StatusOr<std::vector<SpecDocument>> ParseAll(absl::string_view text) {
    // Not YAML::LoadAll, which loops forever on a stray ',' (yaml_loader.h).
    ASSIGN_OR_RETURN(std::vector<YAML::Node> docs,
                     common::LoadYamlDocuments(text, file_, kMaxSpecFileBytes));
    std::vector<SpecDocument> result;
    for (const YAML::Node& doc : docs) {
      if (doc.IsNull()) continue;
      ASSIGN_OR_RETURN(SpecDocument parsed, ParseDocument(doc));
      result.push_back(std::move(parsed));
    }
    if (result.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(file_,
                                                     ": no document (expected kind: "
                                                     "Image, Vip or Jail)"));
    }
    return result;
  }

 private:
  std::string Where(const YAML::Node& node, const YAML::Mark& fallback) const {
    YAML::Mark mark = node.Mark();
    if (mark.line < 0) mark = fallback;
    if (mark.line < 0) return file_;
    return absl::StrCat(file_, ":", mark.line + 1, ":", mark.column + 1);
  }

  absl::Status Error(const YAML::Node& node, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(node, parent_mark_), ": ", what));
  }

  // The fields of mapping `node` (named `what` in messages), refusing keys
  // not in `allowed`, duplicates and non-string keys.
  absl::StatusOr<std::map<std::string, Field>> Fields(const YAML::Node& node,
                                                      absl::string_view what,
                                                      const std::set<std::string>& allowed) {
    if (!node.IsMap()) return Error(node, absl::StrCat(what, ": expected a mapping"));
    std::map<std::string, Field> fields;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Error(key, absl::StrCat(what, ": keys must be strings"));
      const std::string name = key.Scalar();
      if (allowed.count(name) == 0) {
        return Error(key, absl::StrCat(what, ": unknown key \"", name,
                                       "\" (allowed: ", absl::StrJoin(allowed, ", "), ")"));
      }
      if (!fields.emplace(name, Field{key, it->second}).second) {
        return Error(key, absl::StrCat(what, ": duplicate key \"", name, "\""));
      }
    }
    return fields;
  }

  absl::StatusOr<std::string> String(const Field& f, absl::string_view field) {
    if (!f.value.IsScalar()) {
      return Error(f.value.IsNull() ? f.key : f.value, absl::StrCat(field, ": expected a string"));
    }
    return f.value.Scalar();
  }

  absl::StatusOr<int64_t> Integer(const Field& f, absl::string_view field, int64_t min,
                                  int64_t max) {
    int64_t value = 0;
    if (!f.value.IsScalar() || !absl::SimpleAtoi(f.value.Scalar(), &value)) {
      return Error(f.value.IsNull() ? f.key : f.value,
                   absl::StrCat(field, ": expected an integer"));
    }
    if (value < min || value > max) {
      return Error(f.value, absl::StrCat(field, ": ", value, " is out of range ", min, "..", max));
    }
    return value;
  }

  absl::Status Duration(const Field& f, absl::string_view field, google::protobuf::Duration* out) {
    ASSIGN_OR_RETURN(std::string text, String(f, field));
    absl::StatusOr<google::protobuf::Duration> d = ParseProtoDuration(text);
    if (!d.ok()) return Error(f.value, absl::StrCat(field, ": ", d.status().message()));
    *out = *d;
    return absl::OkStatus();
  }

  absl::Status Name(const Field& f, absl::string_view field, std::string* out) {
    ASSIGN_OR_RETURN(*out, String(f, field));
    absl::Status valid = common::ValidateName(field, *out);
    if (!valid.ok()) return Error(f.value, valid.message());
    return absl::OkStatus();
  }

  absl::Status StringList(const Field& f, absl::string_view field,
                          google::protobuf::RepeatedPtrField<std::string>* out) {
    if (!f.value.IsSequence()) {
      return Error(f.value.IsNull() ? f.key : f.value,
                   absl::StrCat(field, ": expected a list of strings"));
    }
    for (const YAML::Node& item : f.value) {
      if (!item.IsScalar()) return Error(item, absl::StrCat(field, ": expected a string"));
      out->Add(std::string(item.Scalar()));
    }
    return absl::OkStatus();
  }

  absl::Status StringMap(const Field& f, absl::string_view field,
                         google::protobuf::Map<std::string, std::string>* out) {
    if (!f.value.IsMap()) {
      return Error(f.value.IsNull() ? f.key : f.value,
                   absl::StrCat(field, ": expected a mapping of strings"));
    }
    for (auto it = f.value.begin(); it != f.value.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) {
        return Error(it->first, absl::StrCat(field, ": keys and values must be strings"));
      }
      const std::string key = it->first.Scalar();
      if (key.empty()) return Error(it->first, absl::StrCat(field, ": empty key"));
      if (!out->insert({key, it->second.Scalar()}).second) {
        return Error(it->first, absl::StrCat(field, ": duplicate key \"", key, "\""));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Required(const std::map<std::string, Field>& fields, const YAML::Node& node,
                        absl::string_view what, std::initializer_list<const char*> keys) {
    for (const char* key : keys) {
      if (fields.count(key) == 0) return Error(node, absl::StrCat(what, ": missing \"", key, "\""));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<SpecDocument> ParseDocument(const YAML::Node& doc) {
    parent_mark_ = doc.Mark();
    if (!doc.IsMap()) return Error(doc, "a document must be a mapping with \"kind\"");
    YAML::Node kind_node;
    bool has_kind = false;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == "kind") {
        kind_node = it->second;
        has_kind = true;
      }
    }
    if (!has_kind) return Error(doc, "missing \"kind\" (Image, Vip or Jail)");
    if (!kind_node.IsScalar()) return Error(doc, "kind: expected Image, Vip or Jail");
    const std::string kind = kind_node.Scalar();
    SpecDocument result;
    result.origin = Where(doc, parent_mark_);
    if (kind == "Image") {
      result.kind = SpecDocument::Kind::kImage;
      RETURN_IF_ERROR(ParseImage(doc, &result.image));
    } else if (kind == "Vip") {
      result.kind = SpecDocument::Kind::kVip;
      RETURN_IF_ERROR(ParseVip(doc, &result.vip));
    } else if (kind == "Jail") {
      result.kind = SpecDocument::Kind::kJail;
      RETURN_IF_ERROR(ParseJail(doc, &result.jail));
    } else {
      return Error(kind_node,
                   absl::StrCat("kind: unknown kind \"", kind, "\" (expected Image, Vip or Jail)"));
    }
    return result;
  }

  absl::Status ParseImage(const YAML::Node& doc, v1::ImageSpec* image) {
    ASSIGN_OR_RETURN(auto fields, Fields(doc, "Image",
                                         {"kind", "name", "storage_host", "path", "size",
                                          "size_bytes", "filesystem"}));
    RETURN_IF_ERROR(Required(fields, doc, "Image", {"name", "storage_host", "path"}));
    RETURN_IF_ERROR(Name(fields.at("name"), "image name", image->mutable_name()));
    RETURN_IF_ERROR(Name(fields.at("storage_host"), "storage_host", image->mutable_storage_host()));
    ASSIGN_OR_RETURN(std::string path, String(fields.at("path"), "path"));
    absl::StatusOr<std::string> valid_path = common::ValidateAbsolutePath("path", path);
    if (!valid_path.ok()) return Error(fields.at("path").value, valid_path.status().message());
    image->set_path(*valid_path);
    const bool has_size = fields.count("size") > 0;
    const bool has_bytes = fields.count("size_bytes") > 0;
    if (has_size == has_bytes) {
      return Error(doc, absl::StrCat("Image ", image->name(),
                                     ": give exactly one of \"size\" (\"1G\") or \"size_bytes\""));
    }
    if (has_size) {
      ASSIGN_OR_RETURN(std::string text, String(fields.at("size"), "size"));
      absl::StatusOr<uint64_t> size = ParseSize(text);
      if (!size.ok())
        return Error(fields.at("size").value, absl::StrCat("size: ", size.status().message()));
      image->set_size_bytes(*size);
    } else {
      ASSIGN_OR_RETURN(int64_t bytes, Integer(fields.at("size_bytes"), "size_bytes", 1,
                                              std::numeric_limits<int64_t>::max()));
      image->set_size_bytes(static_cast<uint64_t>(bytes));
    }
    if (auto it = fields.find("filesystem"); it != fields.end()) {
      ASSIGN_OR_RETURN(std::string fs, String(it->second, "filesystem"));
      if (fs == "ufs") {
        image->set_filesystem(v1::FILESYSTEM_UFS);
      } else if (fs == "ext4") {
        image->set_filesystem(v1::FILESYSTEM_EXT4);
      } else {
        return Error(it->second.value,
                     absl::StrCat("filesystem: unknown filesystem \"", fs, "\" (ufs or ext4)"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseVip(const YAML::Node& doc, v1::VipSpec* vip) {
    ASSIGN_OR_RETURN(auto fields, Fields(doc, "Vip",
                                         {"kind", "name", "address", "interface", "vhid",
                                          "password", "password_file", "advbase"}));
    RETURN_IF_ERROR(Required(fields, doc, "Vip", {"name", "address", "interface", "vhid"}));
    RETURN_IF_ERROR(Name(fields.at("name"), "vip name", vip->mutable_name()));
    ASSIGN_OR_RETURN(*vip->mutable_address(), String(fields.at("address"), "address"));
    if (absl::Status s = common::ValidateCidr("address", vip->address()); !s.ok()) {
      return Error(fields.at("address").value, s.message());
    }
    ASSIGN_OR_RETURN(*vip->mutable_interface(), String(fields.at("interface"), "interface"));
    if (absl::Status s = common::ValidateInterfaceName("interface", vip->interface()); !s.ok()) {
      return Error(fields.at("interface").value, s.message());
    }
    ASSIGN_OR_RETURN(int64_t vhid, Integer(fields.at("vhid"), "vhid", 1, 255));
    vip->set_vhid(static_cast<uint32_t>(vhid));
    if (auto it = fields.find("advbase"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t advbase, Integer(it->second, "advbase", 1, 255));
      vip->set_advbase(static_cast<uint32_t>(advbase));
    }
    const bool has_password = fields.count("password") > 0;
    const bool has_file = fields.count("password_file") > 0;
    if (has_password && has_file) {
      return Error(fields.at("password_file").key,
                   "give either \"password\" or \"password_file\", not both");
    }
    if (has_password) {
      ASSIGN_OR_RETURN(*vip->mutable_password(), String(fields.at("password"), "password"));
    } else if (has_file) {
      const Field& f = fields.at("password_file");
      ASSIGN_OR_RETURN(std::string path, String(f, "password_file"));
      if (path.empty()) return Error(f.value, "password_file: must not be empty");
      absl::StatusOr<std::string> resolved = ResolvePasswordFile(path);
      if (!resolved.ok()) {
        return Error(f.value, absl::StrCat("password_file: ", resolved.status().message()));
      }
      absl::StatusOr<std::string> secret = ReadPasswordFile(*resolved);
      if (!secret.ok()) {
        return Error(f.value, absl::StrCat("password_file: ", secret.status().message()));
      }
      std::string password = *secret;
      while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
      }
      if (password.empty())
        return Error(f.value, absl::StrCat("password_file: ", *resolved, " is empty"));
      vip->set_password(password);
    }
    return absl::OkStatus();
  }

  absl::Status ParseJail(const YAML::Node& doc, v1::Jail* jail) {
    ASSIGN_OR_RETURN(
        auto fields,
        Fields(doc, "Jail", {"kind", "name", "image", "vip", "placement", "spec", "policy"}));
    RETURN_IF_ERROR(Required(fields, doc, "Jail", {"name"}));
    RETURN_IF_ERROR(Name(fields.at("name"), "jail name", jail->mutable_name()));
    if (auto it = fields.find("image"); it != fields.end()) {
      RETURN_IF_ERROR(Name(it->second, "image", jail->mutable_image()));
    }
    if (auto it = fields.find("vip"); it != fields.end()) {
      RETURN_IF_ERROR(Name(it->second, "vip", jail->mutable_vip()));
    }
    if (auto it = fields.find("placement"); it != fields.end()) {
      RETURN_IF_ERROR(ParsePlacement(it->second.value, jail->mutable_placement()));
    }
    if (auto it = fields.find("spec"); it != fields.end()) {
      RETURN_IF_ERROR(ParseJailSpec(it->second.value, jail->mutable_spec()));
    }
    if (auto it = fields.find("policy"); it != fields.end()) {
      RETURN_IF_ERROR(ParsePolicy(it->second.value, jail->mutable_policy()));
    }
    return absl::OkStatus();
  }

  absl::Status ParsePlacement(const YAML::Node& node, v1::Placement* placement) {
    ASSIGN_OR_RETURN(auto fields, Fields(node, "placement", {"preferred_host", "standbys"}));
    if (auto it = fields.find("preferred_host"); it != fields.end()) {
      RETURN_IF_ERROR(
          Name(it->second, "placement.preferred_host", placement->mutable_preferred_host()));
    }
    if (auto it = fields.find("standbys"); it != fields.end()) {
      RETURN_IF_ERROR(StringList(it->second, "placement.standbys", placement->mutable_standbys()));
      std::set<std::string> seen;
      int index = 0;
      for (const std::string& host : placement->standbys()) {
        const YAML::Node item = it->second.value[index++];
        if (absl::Status s = common::ValidateName("placement.standbys", host); !s.ok()) {
          return Error(item, s.message());
        }
        if (!seen.insert(host).second || host == placement->preferred_host()) {
          return Error(item, absl::StrCat("placement.standbys: host ", host, " is listed twice"));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParseJailSpec(const YAML::Node& node, v1::JailSpec* spec) {
    ASSIGN_OR_RETURN(auto fields,
                     Fields(node, "spec",
                            {"hostname", "mount_point", "exec_start", "exec_stop", "stop_timeout",
                             "devfs_ruleset", "securelevel", "enforce_statfs", "allow", "params",
                             "limits", "env", "health_port"}));
    if (auto it = fields.find("hostname"); it != fields.end()) {
      ASSIGN_OR_RETURN(*spec->mutable_hostname(), String(it->second, "spec.hostname"));
    }
    if (auto it = fields.find("mount_point"); it != fields.end()) {
      ASSIGN_OR_RETURN(std::string path, String(it->second, "spec.mount_point"));
      absl::StatusOr<std::string> valid = common::ValidateAbsolutePath("spec.mount_point", path);
      if (!valid.ok()) return Error(it->second.value, valid.status().message());
      spec->set_mount_point(*valid);
    }
    if (auto it = fields.find("exec_start"); it != fields.end()) {
      RETURN_IF_ERROR(StringList(it->second, "spec.exec_start", spec->mutable_exec_start()));
    }
    if (auto it = fields.find("exec_stop"); it != fields.end()) {
      RETURN_IF_ERROR(StringList(it->second, "spec.exec_stop", spec->mutable_exec_stop()));
    }
    if (auto it = fields.find("stop_timeout"); it != fields.end()) {
      RETURN_IF_ERROR(Duration(it->second, "spec.stop_timeout", spec->mutable_stop_timeout()));
    }
    if (auto it = fields.find("devfs_ruleset"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t v, Integer(it->second, "spec.devfs_ruleset", 0, 65535));
      spec->set_devfs_ruleset(static_cast<uint32_t>(v));
    }
    if (auto it = fields.find("securelevel"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t v, Integer(it->second, "spec.securelevel", -1, 3));
      spec->set_securelevel(static_cast<int32_t>(v));
    }
    if (auto it = fields.find("enforce_statfs"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t v, Integer(it->second, "spec.enforce_statfs", 0, 2));
      spec->set_enforce_statfs(static_cast<uint32_t>(v));
    }
    if (auto it = fields.find("allow"); it != fields.end()) {
      RETURN_IF_ERROR(StringList(it->second, "spec.allow", spec->mutable_allow()));
    }
    if (auto it = fields.find("params"); it != fields.end()) {
      RETURN_IF_ERROR(StringMap(it->second, "spec.params", spec->mutable_params()));
    }
    if (auto it = fields.find("env"); it != fields.end()) {
      RETURN_IF_ERROR(StringMap(it->second, "spec.env", spec->mutable_env()));
    }
    if (auto it = fields.find("health_port"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t v, Integer(it->second, "spec.health_port", 0, 65535));
      spec->set_health_port(static_cast<uint32_t>(v));
    }
    if (auto it = fields.find("limits"); it != fields.end()) {
      const YAML::Node& list = it->second.value;
      if (!list.IsSequence()) {
        return Error(list.IsNull() ? it->second.key : list,
                     "spec.limits: expected a list of {resource, action, amount}");
      }
      for (const YAML::Node& item : list) {
        ASSIGN_OR_RETURN(auto limit,
                         Fields(item, "spec.limits[]", {"resource", "action", "amount"}));
        RETURN_IF_ERROR(Required(limit, item, "spec.limits[]", {"resource", "action", "amount"}));
        v1::RctlLimit* out = spec->add_limits();
        ASSIGN_OR_RETURN(*out->mutable_resource(), String(limit.at("resource"), "resource"));
        ASSIGN_OR_RETURN(*out->mutable_action(), String(limit.at("action"), "action"));
        ASSIGN_OR_RETURN(*out->mutable_amount(), String(limit.at("amount"), "amount"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ParsePolicy(const YAML::Node& node, v1::JailPolicy* policy) {
    ASSIGN_OR_RETURN(auto fields, Fields(node, "policy",
                                         {"failback", "failback_after", "max_restarts", "window"}));
    if (auto it = fields.find("failback"); it != fields.end()) {
      ASSIGN_OR_RETURN(std::string mode, String(it->second, "policy.failback"));
      if (mode == "none") {
        policy->set_failback(v1::FAILBACK_MODE_NONE);
      } else if (mode == "auto") {
        policy->set_failback(v1::FAILBACK_MODE_AUTO);
      } else {
        return Error(it->second.value,
                     absl::StrCat("policy.failback: unknown mode \"", mode, "\" (none or auto)"));
      }
    }
    if (auto it = fields.find("failback_after"); it != fields.end()) {
      RETURN_IF_ERROR(
          Duration(it->second, "policy.failback_after", policy->mutable_failback_after()));
    }
    if (auto it = fields.find("max_restarts"); it != fields.end()) {
      ASSIGN_OR_RETURN(int64_t v, Integer(it->second, "policy.max_restarts", 0, 1000));
      policy->set_max_restarts(static_cast<uint32_t>(v));
    }
    if (auto it = fields.find("window"); it != fields.end()) {
      RETURN_IF_ERROR(Duration(it->second, "policy.window", policy->mutable_window()));
    }
    return absl::OkStatus();
  }

  // The file a password_file names, without symlinks, "." or "..", checked
  // against the rule of SpecFileOptions: a spec file must not make us read
  // (and send) a file from elsewhere, such as "../../../../etc/shadow" or a
  // symlink beside it pointing there.
  absl::StatusOr<std::string> ResolvePasswordFile(const std::string& path) const {
    std::string resolved;
    if (path[0] == '/') {
      if (!options_.allow_absolute_password_files) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", path,
            "\" is an absolute path; jailoverctl reads a password file outside the spec file's "
            "directory only with --allow-absolute-password-files (put the file beside the spec "
            "and give its relative name, or pass the flag if you trust this spec)"));
      }
      ASSIGN_OR_RETURN(resolved, Canonical(path));
    } else {
      const std::string dir = base_dir_.empty() ? "." : base_dir_;
      const std::string joined = base_dir_.empty() ? path : absl::StrCat(base_dir_, "/", path);
      absl::StatusOr<std::string> root = Canonical(dir);
      if (!root.ok()) {
        return absl::Status(root.status().code(),
                            absl::StrCat("the spec file's directory: ", root.status().message()));
      }
      ASSIGN_OR_RETURN(resolved, Canonical(joined));
      const std::string inside = *root == "/" ? *root : absl::StrCat(*root, "/");
      // The directory itself is left to the regular-file check below.
      if (resolved != *root && !absl::StartsWith(resolved, inside)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", path, "\" resolves to ", resolved, ", outside the spec file's directory ", *root,
            "; a relative password file must stay inside it (give an absolute path and "
            "--allow-absolute-password-files to read a file elsewhere)"));
      }
    }
    return resolved;
  }

  // Reads the file ResolvePasswordFile returned. O_NOFOLLOW: a symlink
  // swapped in for it after the check is not followed (a directory on the way
  // swapped in between still could be, but whoever can do that in the spec's
  // directory can as well rewrite the spec). Only a regular file, as fstat
  // tells of the file opened: a FIFO or a device could block the read or
  // never end (O_NONBLOCK keeps the open itself from blocking on a FIFO).
  static absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open: ", strerror(errno)));
    }
    struct stat info {};
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
      close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
    }
    std::string text;
    char buf[1024];
    while (text.size() <= kMaxPasswordFileBytes) {
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int err = errno;
        close(fd);
        return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read: ", strerror(err)));
      }
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    if (text.size() > kMaxPasswordFileBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", kMaxPasswordFileBytes, " bytes"));
    }
    return text;
  }

  // `path` made absolute, without symlinks, "." or ".."; it must exist.
  static absl::StatusOr<std::string> Canonical(const std::string& path) {
    std::error_code error;
    std::filesystem::path canonical = std::filesystem::canonical(path, error);
    if (error) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", error.message()));
    }
    return canonical.string();
  }

  std::string file_;
  std::string base_dir_;
  SpecFileOptions options_;
  // Mark of the document being parsed: where errors of mark-less nodes point.
  YAML::Mark parent_mark_ = YAML::Mark::null_mark();
};

}  // namespace

std::string SpecKindName(SpecDocument::Kind kind) {
  switch (kind) {
    case SpecDocument::Kind::kImage:
      return "Image";
    case SpecDocument::Kind::kVip:
      return "Vip";
    case SpecDocument::Kind::kJail:
      return "Jail";
  }
  return "?";
}

absl::StatusOr<uint64_t> ParseSize(absl::string_view text) {
  absl::string_view digits = text;
  uint64_t multiplier = 1;
  if (!digits.empty()) {
    switch (absl::ascii_toupper(static_cast<unsigned char>(digits.back()))) {
      case 'K':
        multiplier = uint64_t{1} << 10;
        break;
      case 'M':
        multiplier = uint64_t{1} << 20;
        break;
      case 'G':
        multiplier = uint64_t{1} << 30;
        break;
      case 'T':
        multiplier = uint64_t{1} << 40;
        break;
      default:
        break;
    }
    if (multiplier != 1) digits.remove_suffix(1);
  }
  uint64_t value = 0;
  const bool all_digits =
      !digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit);
  if (!all_digits || !absl::SimpleAtoi(digits, &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a size (bytes, or a number with K, M, G or T, e.g. \"10G\")"));
  }
  if (value == 0) return absl::InvalidArgumentError("size must be greater than zero");
  if (value > std::numeric_limits<uint64_t>::max() / multiplier) {
    return absl::InvalidArgumentError(absl::StrCat("size \"", text, "\" is too large"));
  }
  return value * multiplier;
}

absl::StatusOr<google::protobuf::Duration> ParseProtoDuration(absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() ||
      d == -absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration (e.g. \"30s\", \"5m\", \"1h30m\")"));
  }
  if (d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is negative"));
  }
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1'000'000'000);
  out.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return out;
}

absl::StatusOr<std::vector<SpecDocument>> ParseSpecText(absl::string_view text,
                                                        const std::string& file,
                                                        const std::string& base_dir,
                                                        const SpecFileOptions& options) {
  try {
    Parser parser(file, base_dir, options);
    return parser.ParseAll(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.line >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
    }
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
  } catch (...) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": cannot parse"));
  }
}

absl::StatusOr<std::vector<SpecDocument>> ParseSpecFile(const std::string& path,
                                                        const SpecFileOptions& options) {
  if (path.empty() || path == "-") {
    return absl::InvalidArgumentError("-f: give the path of a spec file (stdin is not supported)");
  }
  absl::StatusOr<std::string> text = common::ReadFileToString(path, kMaxSpecFileBytes);
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  const size_t slash = path.rfind('/');
  const std::string base_dir =
      slash == std::string::npos ? "" : path.substr(0, slash == 0 ? 1 : slash);
  return ParseSpecText(*text, path, base_dir, options);
}

}  // namespace jailover::cli
