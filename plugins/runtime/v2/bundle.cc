#include "plugins/runtime/v2/bundle.h"

#include <berth/convert/events.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "core/fs.h"
#include "core/log.h"
#include "core/mount.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"

namespace berth::plugins::runtime_v2 {

namespace fs = std::filesystem;

std::string Bundles::dir(const std::string& ns, const std::string& id) const {
  return state_ + "/" + ns + "/" + id;
}

std::string Bundles::work(const std::string& ns, const std::string& id) const {
  return root_ + "/" + ns + "/" + id;
}

Status Bundles::create(const std::string& ns, const std::string& id, const std::string& spec) {
  std::string bundle = dir(ns, id);
  if (fs::exists(bundle)) remove(ns, id);
  std::error_code ec;
  fs::create_directories(bundle + "/rootfs", ec);
  if (ec) return internal_error("create bundle {}: {}", bundle, ec.message());
  fs::create_directories(work(ns, id), ec);
  fs::create_symlink(work(ns, id), bundle + "/work", ec);
  return core::write_file_atomic(bundle + "/config.json", spec, 0600, core::Durability::kVolatile);
}

void Bundles::record_shim(const std::string& bundle, const std::string& address,
                          const std::string& binary, const std::string& runtime) {
  for (const auto& [file, value] :
       {std::pair{"address", address}, {"shim-binary-path", binary}, {"runtime-name", runtime}})
    core::write_file_atomic(bundle + "/" + file, value, 0600, core::Durability::kVolatile).ignore();
}

void Bundles::remove(const std::string& ns, const std::string& id) const {
  std::string bundle = dir(ns, id);
  core::unmount_all(bundle + "/rootfs", true).ignore();
  std::error_code ec;
  fs::remove_all(work(ns, id), ec);
  if (core::is_mount_point(bundle + "/rootfs")) {
    log::warn("bundle rootfs still mounted; leaving the bundle", {{"bundle", bundle}});
    return;
  }
  fs::remove_all(bundle, ec);
  if (ec) log::warn("remove bundle", {{"bundle", bundle}, {"error", ec.message()}});
}

std::vector<Bundles::Entry> Bundles::list() const {
  std::vector<Entry> out;
  std::error_code ec;
  for (const auto& nsd : fs::directory_iterator(state_, ec)) {
    if (!nsd.is_directory()) continue;
    for (const auto& b : fs::directory_iterator(nsd.path(), ec)) {
      if (b.is_directory())
        out.push_back(
            {nsd.path().filename().string(), b.path().filename().string(), b.path().string()});
    }
  }
  return out;
}

void Bundles::remove_orphan_work_dirs() const {
  std::error_code ec;
  for (const auto& nsd : fs::directory_iterator(root_, ec)) {
    if (!nsd.is_directory()) continue;
    for (const auto& w : fs::directory_iterator(nsd.path(), ec)) {
      if (!fs::exists(dir(nsd.path().filename().string(), w.path().filename().string())))
        fs::remove_all(w.path(), ec);
    }
  }
}

std::vector<events::Envelope> Bundles::take_leftover_events(const std::string& bundle) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(bundle + "/events", ec))
    files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<events::Envelope> out;
  for (const auto& f : files) {
    auto data = core::read_file(f);
    ::containerd::services::events::ttrpc::v1::ForwardRequest req;
    if (data.ok() && req.ParseFromString(*data))
      out.push_back(convert::envelope_from(req.envelope()));
    ::unlink(f.c_str());
  }
  return out;
}

}  // namespace berth::plugins::runtime_v2
