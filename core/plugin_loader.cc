#include "core/plugin_loader.h"

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <filesystem>

#include "core/fs.h"
#include "core/log.h"

namespace berth::core {

struct PluginLoader::Impl {
  // Modules stay loaded for the life of the process: registrations and instances run their code.
  std::vector<boost::dll::shared_library> libraries;
};

PluginLoader::PluginLoader() : impl_(std::make_unique<Impl>()) {}

PluginLoader::~PluginLoader() {
  // Deliberately keep the code mapped: static destructors of plugin modules may still run at exit
  // and a dlclose before that would leave dangling function pointers.
  for (auto& lib : impl_->libraries) {
    new boost::dll::shared_library(std::move(lib));  // NOLINT: intentional leak of the handle
  }
}

const char* PluginLoader::abi_key() { return BERTH_SDK_ABI_KEY; }

std::vector<ModuleError> PluginLoader::load_file(const std::string& path,
                                                 PluginRegistry& registry) {
  std::vector<ModuleError> errors;
  boost::dll::shared_library lib;
  boost::system::error_code ec;
  lib.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !lib.is_loaded()) {
    // dlerror() has the useful text (missing symbol, wrong ELF class...).
    const char* why = ::dlerror();
    errors.push_back({path, failed_precondition("cannot load plugin module \"{}\": {}", path,
                                                why ? why : ec.message())});
    return errors;
  }
  if (!lib.has("berth_plugin_abi_key") || !lib.has("berth_plugin_register")) {
    errors.push_back(
        {path, failed_precondition("plugin module \"{}\" has no berth_plugin_abi_key/"
                                   "berth_plugin_register entry point (use BERTH_PLUGIN_MODULE)",
                                   path)});
    return errors;
  }
  const char* key = lib.get<const char*()>("berth_plugin_abi_key")();
  if (key == nullptr || std::string_view(key) != abi_key()) {
    errors.push_back({path, failed_precondition(
                                "plugin module \"{}\" was built with ABI key \"{}\" but berthd has "
                                "\"{}\"; rebuild it against this SDK",
                                path, key ? key : "(null)", abi_key())});
    return errors;
  }
  std::vector<Registration> regs;
  try {
    lib.get<void(std::vector<Registration>*)>("berth_plugin_register")(&regs);
  } catch (const std::exception& ex) {
    errors.push_back(
        {path, internal_error("plugin module \"{}\": register threw: {}", path, ex.what())});
    return errors;
  }
  if (regs.empty()) {
    errors.push_back({path, failed_precondition("plugin module \"{}\" registers no plugin", path)});
  }
  for (auto& r : regs) {
    std::string uri = r.type + "." + r.id;
    Status st = registry.add(std::move(r), path);
    if (!st.ok()) {
      errors.push_back({path, st});
    } else {
      log::debug("plugin registered", {{"uri", uri}, {"module", path}});
    }
  }
  impl_->libraries.push_back(std::move(lib));
  return errors;
}

std::vector<ModuleError> PluginLoader::load_dir(const std::string& dir, PluginRegistry& registry) {
  std::vector<ModuleError> errors;
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so" && !entry.is_directory())
      files.push_back(entry.path().string());
  }
  if (ec) {
    errors.push_back({dir, from_errno(ec.value(), "read plugin directory \"{}\"", dir)});
    return errors;
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto errs = load_file(f, registry);
    errors.insert(errors.end(), errs.begin(), errs.end());
  }
  return errors;
}

std::string default_plugin_dir() {
  std::string exe_dir = executable_dir();
  std::string build_tree = exe_dir + "/../lib/berth/plugins";
  std::string installed = exe_dir + "/../" BERTH_INSTALL_PLUGIN_DIR;
  std::error_code ec;
  if (std::filesystem::is_directory(installed, ec)) {
    return std::filesystem::weakly_canonical(installed, ec).string();
  }
  return std::filesystem::weakly_canonical(build_tree, ec).string();
}

}  // namespace berth::core
