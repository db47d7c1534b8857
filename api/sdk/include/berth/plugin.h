// The plugin SDK: what a plugin .so sees of berthd.
//
// A plugin module is a shared object exporting two C symbols (use BERTH_PLUGIN_MODULE):
//   berth_plugin_abi_key()   - the ABI key the module was built with (plain C string);
//   berth_plugin_register()  - appends the module's Registrations to a vector.
// berthd compares the key with its own before it calls anything that passes C++ types, and refuses
// a module whose key differs, naming both keys.
//
// Threading: init() runs on the daemon's main thread, one plugin at a time, in dependency order.
// close() runs in reverse order at shutdown. Instances must be thread-safe once init returns,
// because gRPC handlers call them concurrently.
#pragma once

#include <berth/result.h>
#include <berth/status.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

// Interfaces crossing the module boundary keep default visibility so dynamic_cast and
// exceptions agree on their type_info in every module.
#define BERTH_API __attribute__((visibility("default")))

namespace berth {

// Bump when any type crossing the module boundary changes layout or virtual table.
inline constexpr int kSdkAbiVersion = 1;

#define BERTH_STRINGIFY_INNER_(x) #x
#define BERTH_STRINGIFY_(x) BERTH_STRINGIFY_INNER_(x)

// The ABI key: SDK ABI version, compiler family and major version, libstdc++ release date and
// whether the C++11 string/list ABI is in use. Two modules with equal keys can pass std::string,
// std::function and std::shared_ptr to each other safely.
#if defined(BERTH_SDK_ABI_KEY_OVERRIDE)
#define BERTH_SDK_ABI_KEY BERTH_SDK_ABI_KEY_OVERRIDE
#else
#if defined(__clang__)
#define BERTH_COMPILER_ID_ "clang-" BERTH_STRINGIFY_(__clang_major__)
#elif defined(__GNUC__)
#define BERTH_COMPILER_ID_ "gcc-" BERTH_STRINGIFY_(__GNUC__)
#else
#define BERTH_COMPILER_ID_ "unknown"
#endif
#define BERTH_SDK_ABI_KEY                                                        \
  "berth-sdk-abi=2 compiler=" BERTH_COMPILER_ID_ " libstdc++=" BERTH_STRINGIFY_( \
      __GLIBCXX__) " cxx11-abi=" BERTH_STRINGIFY_(_GLIBCXX_USE_CXX11_ABI)
#endif

// Plugin types, the same strings containerd uses.
namespace plugin_type {
inline constexpr std::string_view kInternal = "io.containerd.internal.v1";
inline constexpr std::string_view kRuntimeV2 = "io.containerd.runtime.v2";
inline constexpr std::string_view kService = "io.containerd.service.v1";
inline constexpr std::string_view kGrpc = "io.containerd.grpc.v1";
inline constexpr std::string_view kTtrpc = "io.containerd.ttrpc.v1";
inline constexpr std::string_view kSnapshotter = "io.containerd.snapshotter.v1";
inline constexpr std::string_view kDiffer = "io.containerd.differ.v1";
inline constexpr std::string_view kMetadata = "io.containerd.metadata.v1";
inline constexpr std::string_view kContent = "io.containerd.content.v1";
inline constexpr std::string_view kGc = "io.containerd.gc.v1";
inline constexpr std::string_view kEvent = "io.containerd.event.v1";
inline constexpr std::string_view kLease = "io.containerd.lease.v1";
}  // namespace plugin_type

// Every plugin instance derives from Plugin. Other interfaces (GrpcService, MetadataStore, ...)
// are mixed in with virtual inheritance; callers find them with dynamic_pointer_cast.
class BERTH_API Plugin {
 public:
  virtual ~Plugin() = default;
  // Releases what init acquired. Called once, in reverse init order, at daemon shutdown.
  virtual Status close() { return Status(); }
};

// Skipping: a plugin that does not apply to this host returns skip("why") from init (directly
// or through any chain of callers). It is reported as "skip" (not "error") and never fails
// startup. The mark is typed (Status::skips_plugin); the message still starts with "skip
// plugin: " because that is what containerd's ctr looks for in introspection's init_err.
template <typename... Args>
Status skip(fmt::format_string<Args...> f, Args&&... args) {
  return Status::skip_plugin("skip plugin: " + fmt::format(f, std::forward<Args>(args)...));
}
inline bool is_skip(const Status& s) { return s.skips_plugin(); }

// Decodes one plugin's [plugins."<uri>"] table over the plugin's defaults: each read() leaves
// `out` untouched when the key is absent, replaces it when present, and fails (naming the file,
// the key and the reason) when the value has the wrong type. Keys never read are reported as
// unknown by the daemon, so a typo fails startup instead of being ignored.
class BERTH_API ConfigReader {
 public:
  virtual ~ConfigReader() = default;
  virtual Status read(std::string_view key, std::string& out) = 0;
  virtual Status read(std::string_view key, bool& out) = 0;
  virtual Status read(std::string_view key, std::int64_t& out) = 0;
  virtual Status read(std::string_view key, double& out) = 0;
  virtual Status read(std::string_view key, std::vector<std::string>& out) = 0;
  virtual Status read(std::string_view key, std::map<std::string, std::string>& out) = 0;
  // Durations are strings like "100ms", "10s", "1h30m".
  virtual Status read_duration(std::string_view key, std::chrono::milliseconds& out) = 0;
  // An error naming this plugin's table and `key`, for values that parse but are out of range.
  virtual Status invalid(std::string_view key, std::string_view reason) = 0;
};

enum class PluginStatus { kOk, kSkipped, kError };

// What introspection reports about one plugin.
struct PluginInfo {
  std::string type;
  std::string id;
  std::vector<std::string> requires_types;
  std::map<std::string, std::string> exports;
  std::vector<std::string> capabilities;
  std::vector<std::string> platforms;  // "os/arch[/variant]"
  std::string source;                  // the .so it came from
  PluginStatus status = PluginStatus::kOk;
  Status error;  // set for kSkipped and kError
  std::string uri() const { return type + "." + id; }
};

// A live view of every plugin the daemon knows (including ones that failed or were skipped).
class BERTH_API PluginSet {
 public:
  virtual ~PluginSet() = default;
  virtual std::vector<PluginInfo> list() const = 0;
};

class BERTH_API InitContext {
 public:
  virtual ~InitContext() = default;

  virtual const std::string& type() const = 0;
  virtual const std::string& id() const = 0;
  // <root>/<uri> and <state>/<uri>; created (0711) before init runs.
  virtual const std::string& root() const = 0;
  virtual const std::string& state() const = 0;
  // The daemon's own addresses, for plugins that hand them to child processes.
  virtual const std::string& grpc_address() const = 0;
  virtual const std::string& ttrpc_address() const = 0;

  // What the registration's config decoder returned (nullptr when it has none).
  virtual std::shared_ptr<const void> config_ptr() const = 0;
  template <typename T>
  const T& config() const {
    return *static_cast<const T*>(config_ptr().get());
  }

  // Reported by introspection; plugins fill these during init.
  virtual std::map<std::string, std::string>& exports() = 0;
  virtual std::vector<std::string>& capabilities() = 0;
  virtual std::vector<std::string>& platforms() = 0;

  // Dependencies. get() returns the first successfully initialised plugin of `type` (in init
  // order); NotFound when there is none, or the dependency's own error when it failed.
  virtual Result<std::shared_ptr<Plugin>> get(std::string_view type) const = 0;
  virtual Result<std::shared_ptr<Plugin>> get_by_id(std::string_view type,
                                                    std::string_view id) const = 0;
  // Every successfully initialised plugin of `type`, by id.
  virtual std::map<std::string, std::shared_ptr<Plugin>> get_all(std::string_view type) const = 0;
  virtual const PluginSet& plugins() const = 0;

  template <typename T>
  Result<std::shared_ptr<T>> get_as(std::string_view type) const {
    BERTH_TRY(auto p, get(type));
    auto typed = std::dynamic_pointer_cast<T>(p);
    if (!typed) {
      return failed_precondition("plugin of type {} does not implement the expected interface",
                                 type);
    }
    return typed;
  }
};

using ConfigDecoder = std::function<Result<std::shared_ptr<const void>>(ConfigReader&)>;
using InitFunction = std::function<Result<std::shared_ptr<Plugin>>(InitContext&)>;

struct Registration {
  std::string type;
  std::string id;
  // Types (not ids) this plugin needs initialised first; "*" means every other plugin.
  std::vector<std::string> requires_types;
  // Optional: decodes [plugins."<type>.<id>"] over defaults. Runs for every enabled plugin before
  // any init, so a bad config fails startup before anything is started.
  ConfigDecoder config;
  InitFunction init;
};

// Helper for decoders: `return config_value(std::move(cfg));`
template <typename T>
Result<std::shared_ptr<const void>> config_value(T value) {
  return std::shared_ptr<const void>(std::make_shared<const T>(std::move(value)));
}

// Out-of-process plugins ([proxy_plugins.NAME] type = "snapshot"|"content", address = SOCKET):
// a module registers a factory of type kProxyFactoryType whose id is the proxied plugin type
// (e.g. "io.containerd.snapshotter.v1"); the daemon registers <type>.NAME and its init asks the
// factory to connect.
inline constexpr std::string_view kProxyFactoryType = "io.berth.proxy.v1";

class BERTH_API ProxyFactory : public virtual Plugin {
 public:
  virtual Result<std::shared_ptr<Plugin>> connect(InitContext& ic, const std::string& name,
                                                  const std::string& address) = 0;
};

}  // namespace berth

// Declares a plugin module. `fn` is a function returning std::vector<berth::Registration>.
#define BERTH_PLUGIN_MODULE(fn)                                                          \
  extern "C" __attribute__((visibility("default"))) const char* berth_plugin_abi_key() { \
    return BERTH_SDK_ABI_KEY;                                                            \
  }                                                                                      \
  extern "C" __attribute__((visibility("default"))) void berth_plugin_register(          \
      std::vector<::berth::Registration>* out) {                                         \
    for (auto& r : fn()) out->push_back(std::move(r));                                   \
  }
