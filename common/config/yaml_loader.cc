#include "common/config/yaml_loader.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

// Why yaml-cpp 0.7 hangs, and why the check below finds every case.
//
// YAML::LoadAll calls Parser::HandleNextDocument until the scanner has no
// token left. Each call parses one document with a fresh SingleDocParser. If
// a document consumes no token, the parser is left exactly as it was (same
// front token, same directives), so every later call does the same again:
// LoadAll never returns and adds a null node per turn. If every document
// consumes a token, LoadAll ends after at most as many documents as the text
// has tokens.
//
// A document consumes no token only in this way: its front token is not
// "---", SingleDocParser::HandleNode finds no node start there (the switch
// falls through to its default, with no tag or anchor before it) and emits a
// null at the front token's mark, and the token is not "...". Its events are
// therefore exactly DocumentStart(m), Null(m, no anchor), DocumentEnd, and the
// next document starts at the same mark m. A document of that shape that did
// consume a token consumed a tag that resolves to "?" (`!<?>`) or "..."
// tokens, and every token after those starts further on, so the next
// document starts after m. Hence "two consecutive documents that are both a
// lone null at their own start mark, starting at the same position" holds if
// and only if the parser is stuck, and the check stops at the second of them.
// Upstream's later fix (f25f110, after 0.9.0) compares the same positions
// inside the parser. An exhaustive run over all texts of up to 5 characters from
// ",[]{}:?-!&a .\n" found ',' in block context as the only such token.
//
// Rejecting texts with a ',' before parsing cannot work: a comma is fine in
// plain scalars ("a,b") and flow collections, so only the parser knows which
// comma is a stray one. A child process with rlimits would also bound the
// bug, but is too heavy for a daemon's start-up. Instead a first pass runs
// the real parser with an event handler that builds nothing (memory: the
// scanner's tokens only) and stops at a stuck document; the second pass is
// LoadAll on the same text, which makes the same parser calls (the handler
// cannot influence the parser) and so ends after the same documents. Both
// passes are linear in the text in every case measured (1 MiB inputs:
// deep nesting, long flow sequences, 262,144 empty documents, aliases) and
// fuzzed (tests/fuzz), so the caller's byte limit bounds time and memory.

namespace jailover::common {
namespace {

// Watches the events of one document at a time and remembers only whether
// it was a lone null at its own start mark. Builds nothing.
class DocumentShape final : public YAML::EventHandler {
 public:
  // The mark of the last document's first token.
  const YAML::Mark& start() const { return start_; }
  // True if the last document was exactly Null(start(), no anchor).
  bool LoneNullAtStart() const { return events_ == 1 && null_at_start_; }

  // YAML::EventHandler
  void OnDocumentStart(const YAML::Mark& mark) override {
    start_ = mark;
    events_ = 0;
    null_at_start_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    null_at_start_ = ++events_ == 1 && anchor == YAML::NullAnchor && mark.pos == start_.pos;
  }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { ++events_; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    ++events_;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++events_;
  }
  void OnSequenceEnd() override { ++events_; }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++events_;
  }
  void OnMapEnd() override { ++events_; }
  void OnAnchor(const YAML::Mark&, const std::string&) override { ++events_; }

 private:
  YAML::Mark start_ = YAML::Mark::null_mark();
  int events_ = 0;  // of the document so far
  bool null_at_start_ = false;
};

// "ORIGIN:LINE:COL" for a mark, "ORIGIN" for a null mark.
std::string Where(absl::string_view origin, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return std::string(origin);
  return absl::StrCat(origin, ":", mark.line + 1, ":", mark.column + 1);
}

absl::Status StuckError(absl::string_view origin, absl::string_view text, const YAML::Mark& mark) {
  // The mark counts characters of yaml-cpp's UTF-8 stream after the byte
  // order mark: the bytes of `text` after a UTF-8 BOM, but not those of
  // UTF-16 or UTF-32 text. Only name a character that is certainly the one.
  absl::string_view body = text;
  absl::ConsumePrefix(&body, "\xef\xbb\xbf");
  const size_t pos = static_cast<size_t>(mark.pos);
  if (mark.pos >= 0 && pos < body.size() && body[pos] == ',') {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(origin, mark), ": unexpected ',' (a comma separates items only inside [ ] or { })"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(Where(origin, mark), ": unexpected token where a value should start"));
}

// Pass 1: Ok if LoadAll on `input` ends, the error for a stuck document if
// not. Throws what yaml-cpp throws on a syntax error.
absl::Status CheckProgress(absl::string_view origin, const std::string& input) {
  std::istringstream stream(input);
  YAML::Parser parser(stream);
  DocumentShape shape;
  // The start of the previous document if it was a lone null there, else -1.
  int previous_lone_null = -1;
  while (parser.HandleNextDocument(shape)) {
    if (!shape.LoneNullAtStart()) {
      previous_lone_null = -1;
      continue;
    }
    if (previous_lone_null >= 0 && previous_lone_null == shape.start().pos) {
      return StuckError(origin, input, shape.start());
    }
    previous_lone_null = shape.start().pos;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<YAML::Node>> LoadYamlDocuments(absl::string_view text,
                                                          absl::string_view origin,
                                                          size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": ", text.size(), " bytes is more than the limit of ", max_bytes, " bytes"));
  }
  const std::string input(text);
  try {
    if (absl::Status progress = CheckProgress(origin, input); !progress.ok()) return progress;
    return YAML::LoadAll(input);
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(origin, e.mark),
                                                   ": lists and mappings nested too deeply (",
                                                   e.depth(), " levels; yaml-cpp's limit)"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(Where(origin, e.mark), ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": cannot parse: ", e.what()));
  }
}

}  // namespace jailover::common
