// Loads plugin modules (.so) from a directory through Boost.DLL and adds their registrations to a
// registry. A module that cannot be used (not loadable, no entry point, wrong ABI key, duplicate
// URI) is reported with its file name and skipped; the daemon goes on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/plugin_registry.h"

namespace berth::core {

struct ModuleError {
  std::string path;
  Status error;
};

class PluginLoader {
 public:
  PluginLoader();
  ~PluginLoader();
  PluginLoader(const PluginLoader&) = delete;
  PluginLoader& operator=(const PluginLoader&) = delete;

  // Loads every *.so directly inside `dir`, in file-name order. Returns one entry per problem.
  std::vector<ModuleError> load_dir(const std::string& dir, PluginRegistry& registry);
  // Loads one module. Registrations already added stay added if a later one fails.
  std::vector<ModuleError> load_file(const std::string& path, PluginRegistry& registry);

  // The key this daemon was built with; modules must match it exactly.
  static const char* abi_key();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The default plugin directory: ../lib/berth/plugins beside the berthd binary (build tree), or the
// installed one.
std::string default_plugin_dir();

}  // namespace berth::core
