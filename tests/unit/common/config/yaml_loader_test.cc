#include "common/config/yaml_loader.h"

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/common/config/hang_guard.h"

namespace jailover::common {
namespace {

using ::jailover::testing::HangGuard;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr size_t kLimit = 1 << 20;

absl::StatusOr<std::vector<YAML::Node>> Load(const std::string& text) {
  HangGuard guard(absl::StrCat("LoadYamlDocuments(\"", text.substr(0, 40), "\")"));
  return LoadYamlDocuments(text, "x.yaml", kLimit);
}

// The message of loading `text`; fails the test if it loaded.
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<std::vector<YAML::Node>> docs = Load(text);
  EXPECT_FALSE(docs.ok()) << "loaded: [" << text << "]";
  if (docs.ok()) return "";
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(docs.status().message());
}

// printf ',' | YAML::LoadAll never returns in yaml-cpp 0.7 (jbeder/yaml-cpp#1040).
TEST(YamlLoaderTest, LoneCommaIsAnErrorNotAHang) {
  EXPECT_EQ(ErrorOf(","),
            "x.yaml:1:1: unexpected ',' (a comma separates items only inside [ ] or { })");
}

// Every way found to put a stray ',' where a document starts: after
// whitespace, comments, "---", a tag, an anchor, a complete document, a
// quoted scalar, or before more text.
TEST(YamlLoaderTest, StrayCommaAtADocumentStartIsAnErrorWithItsPosition) {
  const struct {
    const char* text;
    const char* where;
  } cases[] = {
      {",\n", "x.yaml:1:1: "},
      {",a", "x.yaml:1:1: "},
      {",,,", "x.yaml:1:1: "},
      {"   ,", "x.yaml:1:4: "},
      {"# comment\n\n,\n", "x.yaml:3:1: "},
      {"--- ,", "x.yaml:1:5: "},
      {"---\n,\n", "x.yaml:2:1: "},
      {"!tag ,", "x.yaml:1:6: "},
      {"&anchor ,", "x.yaml:1:9: "},
      {"!<?> ,", "x.yaml:1:6: "},
      {"\"quoted\",", "x.yaml:1:9: "},
      {"\"quoted\", more", "x.yaml:1:9: "},
      {"a: 1\n---\n,\n", "x.yaml:3:1: "},
      {"a: 1\n...\n,\n", "x.yaml:3:1: "},
      {"%YAML 1.2\n---\n,\n", "x.yaml:3:1: "},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(ErrorOf(c.text), StartsWith(absl::StrCat(c.where, "unexpected ','")))
        << "[" << c.text << "]";
  }
}

// Texts whose documents look like the stuck one (a lone null at the
// document's start) but make progress: they must load, not be refused.
TEST(YamlLoaderTest, EmptyDocumentsAndLookalikesLoad) {
  const struct {
    const char* text;
    size_t documents;
  } cases[] = {
      {"", 0},
      {"# only a comment\n", 0},
      {"---\n", 1},
      {"---\n---\n---\n", 3},
      {"...\n", 1},
      {"...\n...\n", 1},
      {"---\n...\n---\n...\n", 2},
      {"!<?>\n", 1},  // a tag that resolves to "?": a null at the start
      {"!<?>\n---\n!<?>\n", 2},
      {"~\n", 1},
      {"a,b\n", 1},  // a comma inside a plain scalar
      {"foo,\n", 1},
      {"[a, b, ]\n", 1},  // commas in flow collections
      {"{a: 1, b: 2}\n", 1},
      {"a: [1, 2]\nb: {c: d}\n", 1},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<YAML::Node>> docs = Load(c.text);
    ASSERT_TRUE(docs.ok()) << "[" << c.text << "]: " << docs.status();
    EXPECT_EQ(docs->size(), c.documents) << "[" << c.text << "]";
  }
}

TEST(YamlLoaderTest, DocumentsKeepTheirPositions) {
  absl::StatusOr<std::vector<YAML::Node>> docs = Load("a: 1\n---\nb: [x, y]\n");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_EQ((*docs)[0]["a"].Scalar(), "1");
  EXPECT_EQ((*docs)[1]["b"][1].Scalar(), "y");
  EXPECT_EQ((*docs)[1].Mark().line, 2);
  EXPECT_EQ((*docs)[1]["b"].Mark().column, 3);
}

TEST(YamlLoaderTest, ManyEmptyDocumentsLoadQuickly) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "---\n";
  absl::StatusOr<std::vector<YAML::Node>> docs = Load(text);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->size(), 20000u);
  for (const YAML::Node& doc : *docs) ASSERT_TRUE(doc.IsNull());
}

TEST(YamlLoaderTest, SyntaxErrorsNameFileLineAndColumn) {
  EXPECT_EQ(ErrorOf("]"), "x.yaml:1:1: illegal flow end");
  EXPECT_EQ(ErrorOf("a: 1\n}\n"), "x.yaml:2:1: illegal flow end");
  EXPECT_EQ(ErrorOf("a: [1, 2\n"), "x.yaml:2:1: end of sequence flow not found");
  EXPECT_THAT(ErrorOf("[:"), StartsWith("x.yaml:1:2: "));
  EXPECT_THAT(ErrorOf("a: *undefined\n"), StartsWith("x.yaml:1:4: "));
}

TEST(YamlLoaderTest, DeepNestingIsAnErrorNotAStackOverflow) {
  EXPECT_THAT(ErrorOf(std::string(100000, '[')),
              AllOf(StartsWith("x.yaml:1:"), HasSubstr("nested too deeply")));
  std::string block;
  for (int i = 0; i < 1000; ++i) block += std::string(i, ' ') + "- \n";
  EXPECT_THAT(ErrorOf(block), HasSubstr("nested too deeply"));
}

TEST(YamlLoaderTest, TextOverTheLimitIsRefusedBeforeParsing) {
  const std::string commas(101, ',');
  absl::StatusOr<std::vector<YAML::Node>> docs = LoadYamlDocuments(commas, "x.yaml", 100);
  EXPECT_EQ(docs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(docs.status().message()),
            "x.yaml: 101 bytes is more than the limit of 100 bytes");
  EXPECT_TRUE(LoadYamlDocuments(std::string(100, '#'), "x.yaml", 100).ok());
}

TEST(YamlLoaderTest, ByteOrderMarksNulAndBadUtf8AreValuesOrErrorsNotExceptions) {
  EXPECT_THAT(ErrorOf("\xef\xbb\xbf,"), StartsWith("x.yaml:1:1: unexpected ','"));
  EXPECT_THAT(ErrorOf("\xef\xbb\xbf  ,"), StartsWith("x.yaml:1:3: unexpected ','"));
  // UTF-16: the mark is not a byte offset, so the character is not named.
  EXPECT_EQ(ErrorOf(std::string("\xff\xfe,\0", 4)),
            "x.yaml:1:1: unexpected token where a value should start");
  EXPECT_THAT(ErrorOf("\xc3\x28: ,"), StartsWith("x.yaml:1:"));
  absl::StatusOr<std::vector<YAML::Node>> docs = Load(std::string("a: \0b\n", 6));
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  EXPECT_TRUE((*docs)[0]["a"].IsScalar());  // yaml-cpp's reading of the NUL aside
}

}  // namespace
}  // namespace jailover::common
