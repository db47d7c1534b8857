// containerd's filter language, used by every List/Walk call.
//
//   filter   := selector (',' selector)*          selectors in one string are ANDed
//   selector := fieldpath [op value]              no op: the field must be present
//   fieldpath:= field ('.' field)*                field: [A-Za-z0-9_/-]+ or a "quoted string"
//   op       := '==' | '!=' | '~='                ~= is a regular expression search
//   value    := "quoted" | unquoted up to ',' or whitespace
//
// Several filter strings are ORed. An empty list matches everything.
#pragma once

#include <berth/result.h>

#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace berth::core {

// Looks up a field path on the object being filtered; nullopt when absent.
using FieldAdaptor = std::function<std::optional<std::string>(const std::vector<std::string>&)>;

class Filter {
 public:
  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<std::regex> re;
  };

  static Result<Filter> parse(const std::vector<std::string>& filters);
  static Result<Filter> parse(const std::string& filter) { return parse(std::vector{filter}); }

  bool empty() const { return alternatives_.empty(); }
  bool match(const FieldAdaptor& adaptor) const;

 private:
  std::vector<std::vector<Selector>> alternatives_;  // OR of ANDs
};

}  // namespace berth::core
