// A task's files (see shim_manager.h for what each holds): the bundle under the plugin's state
// dir (a tmpfs: gone after a reboot) and the work dir under its root.
#pragma once

#include <berth/events.h>
#include <berth/result.h>

#include <string>
#include <vector>

namespace berth::plugins::runtime_v2 {

class Bundles {
 public:
  Bundles(std::string root, std::string state) : root_(std::move(root)), state_(std::move(state)) {}

  std::string dir(const std::string& ns, const std::string& id) const;
  std::string work(const std::string& ns, const std::string& id) const;

  // rootfs/, the work dir and its `work` link, config.json. A bundle left by a task that is gone
  // (a crash between create steps) is replaced.
  Status create(const std::string& ns, const std::string& id, const std::string& spec);
  // What a restarted daemon needs to find the shim again: address, shim-binary-path,
  // runtime-name.
  static void record_shim(const std::string& bundle, const std::string& address,
                          const std::string& binary, const std::string& runtime);
  // Unmounts the rootfs and removes the bundle and the work dir; a bundle with a mount still in
  // it is left alone (never follow a mount when removing).
  void remove(const std::string& ns, const std::string& id) const;

  struct Entry {
    std::string ns, id, dir;
  };
  std::vector<Entry> list() const;
  // Work dirs whose bundle is gone (after a reboot).
  void remove_orphan_work_dirs() const;

  // The events the shim left undelivered, oldest first; each file is removed once read.
  static std::vector<events::Envelope> take_leftover_events(const std::string& bundle);

 private:
  std::string root_, state_;
};

}  // namespace berth::plugins::runtime_v2
