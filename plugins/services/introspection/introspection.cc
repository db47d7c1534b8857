#include "plugins/services/introspection/introspection.h"

#include "core/filters.h"
#include "core/fs.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::introspection::v1;

bool valid_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

IntrospectionService::IntrospectionService(const PluginSet& plugins, std::string uuid_path)
    : plugins_(plugins), uuid_path_(std::move(uuid_path)) {}

grpc::Status IntrospectionService::Plugins(grpc::ServerContext* ctx, const pb::PluginsRequest* req,
                                           pb::PluginsResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto filter =
        core::Filter::parse(std::vector<std::string>(req->filters().begin(), req->filters().end()));
    if (!filter.ok()) return filter.status();
    for (const auto& info : plugins_.list()) {
      auto adaptor = [&](const std::vector<std::string>& path) -> std::optional<std::string> {
        if (path.size() == 1 && path[0] == "type") return info.type;
        if (path.size() == 1 && path[0] == "id") return info.id;
        if (path.size() == 1 && path[0] == "status") {
          return std::string(info.status == PluginStatus::kOk        ? "ok"
                             : info.status == PluginStatus::kSkipped ? "skip"
                                                                     : "error");
        }
        if (path.size() == 1 && path[0] == "capabilities") {
          if (info.capabilities.empty()) return std::nullopt;
          return info.capabilities.front();
        }
        if (path.size() == 2 && path[0] == "exports") {
          auto it = info.exports.find(path[1]);
          if (it == info.exports.end()) return std::nullopt;
          return it->second;
        }
        return std::nullopt;
      };
      if (!filter->match(adaptor)) continue;
      auto* p = out->add_plugins();
      p->set_type(info.type);
      p->set_id(info.id);
      for (const auto& r : info.requires_types) p->add_requires_types(r);
      for (const auto& platform : info.platforms) {
        auto* pl = p->add_platforms();
        auto first = platform.find('/');
        auto second = first == std::string::npos ? std::string::npos : platform.find('/', first + 1);
        pl->set_os(platform.substr(0, first));
        if (first != std::string::npos)
          pl->set_architecture(platform.substr(first + 1, second - first - 1));
        if (second != std::string::npos) pl->set_variant(platform.substr(second + 1));
      }
      for (const auto& [k, v] : info.exports) (*p->mutable_exports())[k] = v;
      for (const auto& c : info.capabilities) p->add_capabilities(c);
      if (info.status != PluginStatus::kOk) {
        p->mutable_init_err()->set_code(static_cast<int>(info.error.code()));
        p->mutable_init_err()->set_message(info.error.message());
      }
    }
    return Status();
  });
}

Result<std::string> IntrospectionService::uuid() {
  std::lock_guard lock(mu_);
  if (!uuid_.empty()) return uuid_;
  if (auto existing = core::read_file(uuid_path_); existing.ok()) {
    std::string v = *existing;
    while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
    if (valid_uuid(v)) {
      uuid_ = v;
      return uuid_;
    }
    return Status(Code::kDataLoss, fmt::format("server uuid file \"{}\" is corrupt", uuid_path_));
  } else if (existing.status().code() != Code::kNotFound) {
    return existing.status();
  }
  BERTH_TRY(auto fresh, core::read_file("/proc/sys/kernel/random/uuid"));
  while (!fresh.empty() && fresh.back() == '\n') fresh.pop_back();
  BERTH_RETURN_IF_ERROR(core::write_file_atomic(uuid_path_, fresh + "\n", 0644));
  uuid_ = fresh;
  return uuid_;
}

grpc::Status IntrospectionService::Server(grpc::ServerContext* ctx, const google::protobuf::Empty*,
                                          pb::ServerResponse* out) {
  return serve_unscoped(ctx, [&]() -> Status {
    auto id = uuid();
    if (!id.ok()) return id.status();
    out->set_uuid(*id);
    return Status();
  });
}

}  // namespace berth::plugins::services
