#include "core/plugin_registry.h"

#include <algorithm>
#include <functional>

#include "core/fs.h"
#include "core/log.h"

namespace berth::core {

struct PluginRegistry::Entry {
  Registration reg;
  std::string source;
  std::string uri;
  bool disabled = false;
  std::shared_ptr<const void> config;
  // Filled by init:
  bool attempted = false;
  int init_seq = -1;
  PluginStatus status = PluginStatus::kError;
  Status error = Status(Code::kUnavailable, "not initialised");
  std::shared_ptr<Plugin> instance;
  std::map<std::string, std::string> exports;
  std::vector<std::string> capabilities;
  std::vector<std::string> platforms;
};

class PluginRegistry::Context final : public InitContext {
 public:
  Context(PluginRegistry& reg, Entry& e, std::string root, std::string state)
      : reg_(reg), e_(e), root_(std::move(root)), state_(std::move(state)) {}

  const std::string& type() const override { return e_.reg.type; }
  const std::string& id() const override { return e_.reg.id; }
  const std::string& root() const override { return root_; }
  const std::string& state() const override { return state_; }
  const std::string& grpc_address() const override { return reg_.options_.grpc_address; }
  const std::string& ttrpc_address() const override { return reg_.options_.ttrpc_address; }
  std::shared_ptr<const void> config_ptr() const override { return e_.config; }
  std::map<std::string, std::string>& exports() override { return e_.exports; }
  std::vector<std::string>& capabilities() override { return e_.capabilities; }
  std::vector<std::string>& platforms() override { return e_.platforms; }

  Result<std::shared_ptr<Plugin>> get(std::string_view type) const override {
    Status first_error;
    for (const auto& e : reg_.entries_) {
      if (e->reg.type != type || e->disabled || !e->attempted) continue;
      if (e->status == PluginStatus::kOk) return e->instance;
      if (first_error.ok()) first_error = e->error.with_context(fmt::format("plugin {}", e->uri));
    }
    if (!first_error.ok()) return first_error;
    return not_found("no plugin of type {} is loaded", type);
  }

  Result<std::shared_ptr<Plugin>> get_by_id(std::string_view type,
                                            std::string_view id) const override {
    Entry* e = reg_.find(type, id);
    if (!e || e->disabled || !e->attempted)
      return not_found("plugin {}.{} is not loaded", type, id);
    if (e->status != PluginStatus::kOk)
      return e->error.with_context(fmt::format("plugin {}", e->uri));
    return e->instance;
  }

  std::map<std::string, std::shared_ptr<Plugin>> get_all(std::string_view type) const override {
    std::map<std::string, std::shared_ptr<Plugin>> out;
    for (auto& [id, p] : reg_.instances(type)) out[id] = p;
    return out;
  }

  const PluginSet& plugins() const override { return reg_; }

 private:
  PluginRegistry& reg_;
  Entry& e_;
  std::string root_;
  std::string state_;
};

PluginRegistry::PluginRegistry(Options options) : options_(std::move(options)) {}

PluginRegistry::~PluginRegistry() { close_all(); }

PluginRegistry::Entry* PluginRegistry::find(std::string_view type, std::string_view id) const {
  for (const auto& e : entries_) {
    if (e->reg.type == type && e->reg.id == id) return e.get();
  }
  return nullptr;
}

Status PluginRegistry::add(Registration reg, std::string source) {
  if (reg.type.empty() || reg.id.empty()) {
    return invalid_argument("plugin from \"{}\" has an empty type or id", source);
  }
  if (!reg.init) {
    return invalid_argument("plugin {}.{} from \"{}\" has no init function", reg.type, reg.id,
                            source);
  }
  if (std::count(reg.requires_types.begin(), reg.requires_types.end(), "*") &&
      reg.requires_types.size() > 1) {
    return invalid_argument(
        "plugin {}.{} from \"{}\": \"*\" cannot be combined with other requirements", reg.type,
        reg.id, source);
  }
  if (Entry* existing = find(reg.type, reg.id)) {
    return already_exists("plugin {}.{} from \"{}\" is already registered by \"{}\"", reg.type,
                          reg.id, source, existing->source);
  }
  auto e = std::make_unique<Entry>();
  e->uri = reg.type + "." + reg.id;
  e->disabled = options_.disabled.count(e->uri) > 0;
  e->reg = std::move(reg);
  e->source = std::move(source);
  std::lock_guard lock(mu_);
  entries_.push_back(std::move(e));
  return Status();
}

Status PluginRegistry::decode_configs() {
  for (auto& e : entries_) {
    if (e->disabled || !e->reg.config) continue;
    const toml::table* table = nullptr;
    if (auto it = options_.configs.find(e->uri); it != options_.configs.end()) table = &it->second;
    TomlConfigReader reader(table, e->uri, options_.config_source);
    Result<std::shared_ptr<const void>> cfg = Status(Code::kInternal, "decoder did not run");
    try {
      cfg = e->reg.config(reader);
    } catch (const std::exception& ex) {
      return internal_error("plugin {} from \"{}\": config decoder threw: {}", e->uri, e->source,
                            ex.what());
    }
    if (!cfg.ok()) return cfg.status();
    BERTH_RETURN_IF_ERROR(reader.check_unknown_keys());
    e->config = *cfg;
  }
  for (const auto& [uri, table] : options_.configs) {
    Entry* match = nullptr;
    for (auto& e : entries_) {
      if (e->uri == uri) match = e.get();
    }
    if (!match) {
      log::warn("config names a plugin that is not loaded",
                {{"uri", uri}, {"config", options_.config_source}});
    } else if (!match->reg.config && !table.empty()) {
      return invalid_argument("config \"{}\": plugin {} takes no configuration",
                              options_.config_source, uri);
    }
  }
  return Status();
}

Result<std::vector<std::string>> PluginRegistry::init_order() const {
  // Depth-first walk in registration order; a plugin's providers (every enabled plugin of a type
  // it requires) come first. Grey nodes on the stack detect cycles.
  enum class Mark { kWhite, kGrey, kBlack };
  std::vector<Mark> mark(entries_.size(), Mark::kWhite);
  std::vector<std::size_t> stack;
  std::vector<std::string> order;

  std::function<Status(std::size_t)> visit = [&](std::size_t i) -> Status {
    if (mark[i] == Mark::kBlack) return Status();
    if (mark[i] == Mark::kGrey) {
      std::string cycle;
      auto it = std::find(stack.begin(), stack.end(), i);
      for (; it != stack.end(); ++it) cycle += entries_[*it]->uri + " -> ";
      cycle += entries_[i]->uri;
      return invalid_argument("plugin dependency cycle: {}", cycle);
    }
    mark[i] = Mark::kGrey;
    stack.push_back(i);
    const auto& req = entries_[i]->reg.requires_types;
    bool all = std::count(req.begin(), req.end(), "*") > 0;
    for (std::size_t j = 0; j < entries_.size(); ++j) {
      if (j == i || entries_[j]->disabled) continue;
      const auto& other = entries_[j]->reg;
      bool other_all =
          std::count(other.requires_types.begin(), other.requires_types.end(), "*") > 0;
      bool needed = all ? !other_all : std::find(req.begin(), req.end(), other.type) != req.end();
      if (needed) BERTH_RETURN_IF_ERROR(visit(j));
    }
    stack.pop_back();
    mark[i] = Mark::kBlack;
    order.push_back(entries_[i]->uri);
    return Status();
  };

  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i]->disabled) continue;
    BERTH_RETURN_IF_ERROR(visit(i));
  }
  return order;
}

Status PluginRegistry::init_all() {
  BERTH_TRY(auto order, init_order());
  int next_seq = 0;
  for (const auto& uri : order) {
    Entry* e = nullptr;
    for (auto& x : entries_) {
      if (x->uri == uri) e = x.get();
    }
    std::string root = options_.root + "/" + uri;
    std::string state = options_.state + "/" + uri;
    Context ctx(*this, *e, root, state);
    Result<std::shared_ptr<Plugin>> result = Status(Code::kInternal, "init did not run");
    // 0700, as containerd since CVE-2021-41103: snapshots hold setuid programs from images and
    // the task state holds every container's rootfs; no other host user may reach them.
    Status dirs = make_private_dir(root);
    if (dirs.ok()) dirs = make_private_dir(state);
    if (!dirs.ok()) {
      result = dirs;
    } else {
      try {
        result = e->reg.init(ctx);
      } catch (const std::exception& ex) {
        result = internal_error("init threw an exception: {}", ex.what());
      } catch (...) {
        result = internal_error("init threw a non-standard exception");
      }
    }
    if (result.ok() && !*result) result = internal_error("init returned no instance");
    {
      std::lock_guard lock(mu_);
      e->attempted = true;
      e->init_seq = next_seq++;
      if (result.ok()) {
        e->status = PluginStatus::kOk;
        e->error = Status();
        e->instance = *result;
        initialised_.push_back(e);
      } else {
        e->status = is_skip(result.status()) ? PluginStatus::kSkipped : PluginStatus::kError;
        e->error = result.status();
      }
    }
    if (e->status == PluginStatus::kOk) {
      log::debug("plugin initialised", {{"uri", uri}, {"source", e->source}});
    } else if (e->status == PluginStatus::kSkipped) {
      log::info("plugin skipped", {{"uri", uri}, {"reason", e->error.message()}});
    } else {
      log::warn("plugin failed to initialise",
                {{"uri", uri}, {"source", e->source}, {"error", e->error}});
    }
  }

  for (const auto& uri : options_.required) {
    Entry* e = nullptr;
    for (auto& x : entries_) {
      if (x->uri == uri) e = x.get();
    }
    if (!e) return failed_precondition("required plugin {} is not loaded", uri);
    if (e->disabled) return failed_precondition("required plugin {} is disabled", uri);
    if (e->status != PluginStatus::kOk) {
      return failed_precondition("required plugin {} did not initialise: {}", uri,
                                 e->error.to_string());
    }
  }
  return Status();
}

void PluginRegistry::close_all() {
  std::vector<Entry*> to_close;
  {
    std::lock_guard lock(mu_);
    to_close.swap(initialised_);
  }
  for (auto it = to_close.rbegin(); it != to_close.rend(); ++it) {
    Entry* e = *it;
    Status st;
    try {
      st = e->instance->close();
    } catch (const std::exception& ex) {
      st = internal_error("close threw: {}", ex.what());
    }
    if (!st.ok()) log::warn("plugin close failed", {{"uri", e->uri}, {"error", st}});
  }
  // Drop instances in reverse order too, so a plugin outlives the ones that use it.
  for (auto it = to_close.rbegin(); it != to_close.rend(); ++it) {
    std::lock_guard lock(mu_);
    (*it)->instance.reset();
  }
}

std::vector<PluginInfo> PluginRegistry::list() const {
  std::lock_guard lock(mu_);
  std::vector<PluginInfo> out;
  auto add = [&](const Entry& e) {
    PluginInfo info;
    info.type = e.reg.type;
    info.id = e.reg.id;
    info.requires_types = e.reg.requires_types;
    info.exports = e.exports;
    info.capabilities = e.capabilities;
    info.platforms = e.platforms;
    info.source = e.source;
    if (e.disabled) {
      info.status = PluginStatus::kSkipped;
      info.error = skip("disabled by configuration");
    } else if (!e.attempted) {
      info.status = PluginStatus::kError;
      info.error = e.error;
    } else {
      info.status = e.status;
      info.error = e.error;
    }
    out.push_back(std::move(info));
  };
  // Init order first (what ctr shows), then whatever never ran, in registration order.
  std::vector<const Entry*> ordered;
  for (const auto& e : entries_) ordered.push_back(e.get());
  std::stable_sort(ordered.begin(), ordered.end(), [](const Entry* a, const Entry* b) {
    if (a->attempted != b->attempted) return a->attempted;
    return a->init_seq < b->init_seq;
  });
  for (const Entry* e : ordered) add(*e);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Plugin>>> PluginRegistry::instances(
    std::string_view type) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, std::shared_ptr<Plugin>>> out;
  for (const Entry* e : initialised_) {
    if (e->reg.type == type && e->instance) out.emplace_back(e->reg.id, e->instance);
  }
  return out;
}

}  // namespace berth::core
