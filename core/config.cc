#include "core/config.h"

#include <sstream>

#include "core/duration.h"
#include "core/fs.h"
#include "core/log.h"

namespace berth::core {
namespace {

std::string where(const toml::node& n) {
  const auto& src = n.source();
  if (!src.begin) return "";
  return fmt::format(" (line {})", src.begin.line);
}

class TableDecoder {
 public:
  TableDecoder(const toml::table& t, std::string prefix, const std::string& source)
      : table_(t), prefix_(std::move(prefix)), source_(source) {}

  Status error(std::string_view key, std::string_view reason, const toml::node* n = nullptr) const {
    return invalid_argument("config \"{}\": key \"{}{}\"{}: {}", source_, prefix_, key,
                            n ? where(*n) : "", reason);
  }

  Status str(std::string_view key, std::string& out) {
    seen_.insert(std::string(key));
    const auto* n = table_.get(key);
    if (!n) return Status();
    if (!n->is_string()) return error(key, "must be a string", n);
    out = n->as_string()->get();
    return Status();
  }
  Status integer(std::string_view key, std::int64_t& out) {
    seen_.insert(std::string(key));
    const auto* n = table_.get(key);
    if (!n) return Status();
    if (!n->is_integer()) return error(key, "must be an integer", n);
    out = n->as_integer()->get();
    return Status();
  }
  Status strings(std::string_view key, std::vector<std::string>& out) {
    seen_.insert(std::string(key));
    const auto* n = table_.get(key);
    if (!n) return Status();
    if (!n->is_array()) return error(key, "must be an array of strings", n);
    out.clear();
    for (const auto& e : *n->as_array()) {
      if (!e.is_string()) return error(key, "must be an array of strings", &e);
      out.push_back(e.as_string()->get());
    }
    return Status();
  }
  const toml::table* subtable(std::string_view key, Status& st) {
    seen_.insert(std::string(key));
    const auto* n = table_.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) {
      st = error(key, "must be a table", n);
      return nullptr;
    }
    return n->as_table();
  }
  Status unknown_keys() const {
    for (const auto& [k, v] : table_) {
      if (!seen_.count(std::string(k.str()))) return error(k.str(), "unknown key", &v);
    }
    return Status();
  }

 private:
  const toml::table& table_;
  std::string prefix_;
  const std::string& source_;
  std::set<std::string> seen_;
};

Status check_plugin_uri(const Config& c, std::string_view where_key, std::string_view uri) {
  // containerd v2 rule: plugin URIs have at least four dot-separated parts (io.containerd.x.vN).
  int dots = 0;
  for (char ch : uri) dots += ch == '.';
  if (dots < 3) {
    return invalid_argument(
        "config \"{}\": key \"{}\": \"{}\" is not a plugin URI (expected <type>.<id>, e.g. "
        "io.containerd.snapshotter.v1.overlayfs)",
        c.source, where_key, uri);
  }
  return Status();
}

Status check_absolute(const Config& c, std::string_view key, const std::string& path,
                      bool allow_empty) {
  if (path.empty() && allow_empty) return Status();
  if (path.empty() || path[0] != '/') {
    return invalid_argument("config \"{}\": key \"{}\": \"{}\" must be an absolute path", c.source,
                            key, path);
  }
  return Status();
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& source) {
  Config c;
  c.source = source;
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return invalid_argument("config \"{}\": line {} column {}: {}", source, e.source().begin.line,
                            e.source().begin.column, e.description());
  }

  TableDecoder top(root, "", source);
  BERTH_RETURN_IF_ERROR(top.integer("version", c.version));
  if (c.version != 2) {
    return invalid_argument("config \"{}\": key \"version\": version {} is not supported (use 2)",
                            source, c.version);
  }
  BERTH_RETURN_IF_ERROR(top.str("root", c.root));
  BERTH_RETURN_IF_ERROR(top.str("state", c.state));
  BERTH_RETURN_IF_ERROR(top.str("plugin_dir", c.plugin_dir));
  BERTH_RETURN_IF_ERROR(top.strings("disabled_plugins", c.disabled_plugins));
  BERTH_RETURN_IF_ERROR(top.strings("required_plugins", c.required_plugins));

  Status st;
  if (const auto* grpc = top.subtable("grpc", st)) {
    TableDecoder d(*grpc, "grpc.", source);
    BERTH_RETURN_IF_ERROR(d.str("address", c.grpc_address));
    BERTH_RETURN_IF_ERROR(d.integer("uid", c.grpc_uid));
    BERTH_RETURN_IF_ERROR(d.integer("gid", c.grpc_gid));
    BERTH_RETURN_IF_ERROR(d.integer("max_recv_message_size", c.grpc_max_recv_message_size));
    BERTH_RETURN_IF_ERROR(d.integer("max_send_message_size", c.grpc_max_send_message_size));
    BERTH_RETURN_IF_ERROR(d.unknown_keys());
  }
  BERTH_RETURN_IF_ERROR(st);
  if (const auto* ttrpc = top.subtable("ttrpc", st)) {
    TableDecoder d(*ttrpc, "ttrpc.", source);
    BERTH_RETURN_IF_ERROR(d.str("address", c.ttrpc_address));
    BERTH_RETURN_IF_ERROR(d.unknown_keys());
  }
  BERTH_RETURN_IF_ERROR(st);
  if (const auto* debug = top.subtable("debug", st)) {
    TableDecoder d(*debug, "debug.", source);
    BERTH_RETURN_IF_ERROR(d.str("level", c.log_level));
    BERTH_RETURN_IF_ERROR(d.str("format", c.log_format));
    BERTH_RETURN_IF_ERROR(d.unknown_keys());
  }
  BERTH_RETURN_IF_ERROR(st);
  if (const auto* metrics = top.subtable("metrics", st)) {
    TableDecoder d(*metrics, "metrics.", source);
    BERTH_RETURN_IF_ERROR(d.str("address", c.metrics_address));
    BERTH_RETURN_IF_ERROR(d.unknown_keys());
  }
  BERTH_RETURN_IF_ERROR(st);
  if (const auto* plugins = top.subtable("plugins", st)) {
    for (const auto& [k, v] : *plugins) {
      std::string uri(k.str());
      BERTH_RETURN_IF_ERROR(check_plugin_uri(c, "plugins", uri));
      if (!v.is_table()) {
        return invalid_argument("config \"{}\": key \"plugins.\\\"{}\\\"\"{}: must be a table",
                                source, uri, where(v));
      }
      c.plugins[uri] = *v.as_table();
    }
  }
  BERTH_RETURN_IF_ERROR(st);
  if (const auto* proxies = top.subtable("proxy_plugins", st)) {
    for (const auto& [k, v] : *proxies) {
      std::string name(k.str());
      if (!v.is_table()) {
        return invalid_argument("config \"{}\": key \"proxy_plugins.{}\": must be a table", source,
                                name);
      }
      ProxyPluginConfig p;
      TableDecoder d(*v.as_table(), "proxy_plugins." + name + ".", source);
      BERTH_RETURN_IF_ERROR(d.str("type", p.type));
      BERTH_RETURN_IF_ERROR(d.str("address", p.address));
      BERTH_RETURN_IF_ERROR(d.str("platform", p.platform));
      BERTH_RETURN_IF_ERROR(d.strings("capabilities", p.capabilities));
      BERTH_RETURN_IF_ERROR(d.unknown_keys());
      if (p.type == "snapshot") p.type = std::string(plugin_type::kSnapshotter);
      if (p.type == "content") p.type = std::string(plugin_type::kContent);
      if (p.type != plugin_type::kSnapshotter && p.type != plugin_type::kContent) {
        return d.error(
            "type",
            fmt::format("\"{}\" is not a proxy plugin type (use \"snapshot\" or \"content\")",
                        p.type));
      }
      if (p.address.empty()) return d.error("address", "is required");
      c.proxy_plugins[name] = std::move(p);
    }
  }
  BERTH_RETURN_IF_ERROR(st);
  BERTH_RETURN_IF_ERROR(top.unknown_keys());

  for (const auto& uri : c.disabled_plugins)
    BERTH_RETURN_IF_ERROR(check_plugin_uri(c, "disabled_plugins", uri));
  for (const auto& uri : c.required_plugins)
    BERTH_RETURN_IF_ERROR(check_plugin_uri(c, "required_plugins", uri));
  BERTH_RETURN_IF_ERROR(check_absolute(c, "root", c.root, false));
  BERTH_RETURN_IF_ERROR(check_absolute(c, "state", c.state, false));
  BERTH_RETURN_IF_ERROR(check_absolute(c, "plugin_dir", c.plugin_dir, true));
  BERTH_RETURN_IF_ERROR(check_absolute(c, "grpc.address", c.grpc_address, false));
  BERTH_RETURN_IF_ERROR(check_absolute(c, "ttrpc.address", c.ttrpc_address, true));
  if (c.root == c.state) {
    return invalid_argument("config \"{}\": keys \"root\" and \"state\" must differ (both \"{}\")",
                            source, c.root);
  }
  if (auto level = log::parse_level(c.log_level); !level.ok()) {
    return invalid_argument("config \"{}\": key \"debug.level\": {}", source,
                            level.status().message());
  }
  if (auto format = log::parse_format(c.log_format); !format.ok()) {
    return invalid_argument("config \"{}\": key \"debug.format\": {}", source,
                            format.status().message());
  }
  return c;
}

Result<Config> load_config(const std::string& path) {
  BERTH_TRY(auto text, read_file(path));
  return parse_config(text, path);
}

std::string default_config_toml() {
  Config c;
  std::ostringstream o;
  o << "version = 2\n"
    << "root = \"" << c.root << "\"\n"
    << "state = \"" << c.state << "\"\n"
    << "plugin_dir = \"\"\n"
    << "disabled_plugins = []\n"
    << "required_plugins = []\n\n"
    << "[grpc]\n  address = \"" << c.grpc_address << "\"\n  uid = 0\n  gid = 0\n"
    << "  max_recv_message_size = " << c.grpc_max_recv_message_size << "\n"
    << "  max_send_message_size = " << c.grpc_max_send_message_size << "\n\n"
    << "[ttrpc]\n  address = \"\"\n\n"
    << "[debug]\n  level = \"info\"\n  format = \"text\"\n";
  return o.str();
}

TomlConfigReader::TomlConfigReader(const toml::table* table, std::string uri, std::string source)
    : table_(table), uri_(std::move(uri)), source_(std::move(source)) {}

const toml::node* TomlConfigReader::find(std::string_view key) {
  read_.insert(std::string(key));
  if (!table_) return nullptr;
  return table_->get(key);
}

Status TomlConfigReader::type_error(std::string_view key, std::string_view want) const {
  return invalid_argument("config \"{}\": key \"plugins.\\\"{}\\\".{}\": must be {}", source_, uri_,
                          key, want);
}

Status TomlConfigReader::invalid(std::string_view key, std::string_view reason) {
  return invalid_argument("config \"{}\": key \"plugins.\\\"{}\\\".{}\": {}", source_, uri_, key,
                          reason);
}

Status TomlConfigReader::read(std::string_view key, std::string& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_string()) return type_error(key, "a string");
  out = n->as_string()->get();
  return Status();
}

Status TomlConfigReader::read(std::string_view key, bool& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_boolean()) return type_error(key, "true or false");
  out = n->as_boolean()->get();
  return Status();
}

Status TomlConfigReader::read(std::string_view key, std::int64_t& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_integer()) return type_error(key, "an integer");
  out = n->as_integer()->get();
  return Status();
}

Status TomlConfigReader::read(std::string_view key, double& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (n->is_integer()) {
    out = static_cast<double>(n->as_integer()->get());
  } else if (n->is_floating_point()) {
    out = n->as_floating_point()->get();
  } else {
    return type_error(key, "a number");
  }
  return Status();
}

Status TomlConfigReader::read(std::string_view key, std::vector<std::string>& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_array()) return type_error(key, "an array of strings");
  std::vector<std::string> v;
  for (const auto& e : *n->as_array()) {
    if (!e.is_string()) return type_error(key, "an array of strings");
    v.push_back(e.as_string()->get());
  }
  out = std::move(v);
  return Status();
}

Status TomlConfigReader::read(std::string_view key, std::map<std::string, std::string>& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_table()) return type_error(key, "a table of strings");
  std::map<std::string, std::string> m;
  for (const auto& [k, v] : *n->as_table()) {
    if (!v.is_string()) return type_error(key, "a table of strings");
    m[std::string(k.str())] = v.as_string()->get();
  }
  out = std::move(m);
  return Status();
}

Status TomlConfigReader::read_duration(std::string_view key, std::chrono::milliseconds& out) {
  const auto* n = find(key);
  if (!n) return Status();
  if (!n->is_string()) return type_error(key, "a duration string like \"10s\"");
  auto d = parse_duration(n->as_string()->get());
  if (!d.ok()) return invalid(key, d.status().message());
  out = *d;
  return Status();
}

Status TomlConfigReader::check_unknown_keys() const {
  if (!table_) return Status();
  for (const auto& [k, v] : *table_) {
    if (!read_.count(k.str())) {
      return invalid_argument("config \"{}\": key \"plugins.\\\"{}\\\".{}\"{}: unknown key",
                              source_, uri_, k.str(), where(v));
    }
  }
  return Status();
}

}  // namespace berth::core
