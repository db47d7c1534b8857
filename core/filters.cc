#include "core/filters.h"

#include <cctype>

namespace berth::core {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Result<std::vector<Filter::Selector>> parse() {
    std::vector<Filter::Selector> out;
    skip_space();
    if (at_end()) return error("empty filter");
    while (true) {
      BERTH_TRY(auto sel, selector());
      out.push_back(std::move(sel));
      skip_space();
      if (at_end()) break;
      if (s_[pos_] != ',') return error("expected ',' between selectors");
      ++pos_;
      skip_space();
    }
    return out;
  }

 private:
  Result<Filter::Selector> selector() {
    Filter::Selector sel;
    while (true) {
      BERTH_TRY(auto field, field_name());
      sel.fieldpath.push_back(std::move(field));
      if (!at_end() && s_[pos_] == '.') {
        ++pos_;
        continue;
      }
      break;
    }
    skip_space();
    if (at_end() || s_[pos_] == ',') return sel;
    if (s_.compare(pos_, 2, "==") == 0) {
      sel.op = Filter::Op::kEqual;
    } else if (s_.compare(pos_, 2, "!=") == 0) {
      sel.op = Filter::Op::kNotEqual;
    } else if (s_.compare(pos_, 2, "~=") == 0) {
      sel.op = Filter::Op::kMatches;
    } else {
      return error("expected an operator (==, != or ~=)");
    }
    pos_ += 2;
    skip_space();
    BERTH_TRY(sel.value, value());
    if (sel.op == Filter::Op::kMatches) {
      try {
        sel.re = std::make_shared<std::regex>(sel.value, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return error(fmt::format("bad regular expression \"{}\": {}", sel.value, e.what()));
      }
    }
    return sel;
  }

  Result<std::string> field_name() {
    if (at_end()) return error("expected a field name");
    if (s_[pos_] == '"') return quoted();
    std::size_t start = pos_;
    while (!at_end() && (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_' ||
                         s_[pos_] == '-' || s_[pos_] == '/')) {
      ++pos_;
    }
    if (start == pos_) return error("expected a field name");
    return s_.substr(start, pos_ - start);
  }

  Result<std::string> value() {
    if (at_end()) return error("expected a value");
    if (s_[pos_] == '"') return quoted();
    std::size_t start = pos_;
    while (!at_end() && s_[pos_] != ',' && !std::isspace(static_cast<unsigned char>(s_[pos_])))
      ++pos_;
    if (start == pos_) return error("expected a value");
    return s_.substr(start, pos_ - start);
  }

  Result<std::string> quoted() {
    ++pos_;  // opening quote
    std::string out;
    while (!at_end() && s_[pos_] != '"') {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out.push_back(s_[pos_++]);
    }
    if (at_end()) return error("unterminated quoted string");
    ++pos_;
    return out;
  }

  void skip_space() {
    while (!at_end() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  Status error(std::string_view what) const {
    return invalid_argument("filter \"{}\": {} at offset {}", s_, what, pos_);
  }

  const std::string& s_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<Filter> Filter::parse(const std::vector<std::string>& filters) {
  Filter f;
  for (const auto& s : filters) {
    if (s.empty()) continue;
    Parser p(s);
    BERTH_TRY(auto sels, p.parse());
    f.alternatives_.push_back(std::move(sels));
  }
  return f;
}

bool Filter::match(const FieldAdaptor& adaptor) const {
  if (alternatives_.empty()) return true;
  for (const auto& all : alternatives_) {
    bool ok = true;
    for (const auto& sel : all) {
      auto v = adaptor(sel.fieldpath);
      switch (sel.op) {
        case Op::kPresent: ok = v.has_value(); break;
        case Op::kEqual: ok = v.has_value() && *v == sel.value; break;
        case Op::kNotEqual: ok = !v.has_value() || *v != sel.value; break;
        case Op::kMatches: ok = v.has_value() && std::regex_search(*v, *sel.re); break;
      }
      if (!ok) break;
    }
    if (ok) return true;
  }
  return false;
}

}  // namespace berth::core
