// Inside libberth-oci's cgroup code: the two hierarchy kinds and the helpers they share.
#pragma once

#include <memory>
#include <set>
#include <string>

#include "core/oci/cgroups.h"

namespace berth::oci::cgroups {

class CgroupFs;

std::shared_ptr<Hierarchy> make_v1(CgroupFs& fs, const std::string& mountpoint,
                                   const std::set<std::string>& controllers,
                                   const std::string& path);
// `owns_rest`: this tree also takes what v1 has no controller for (freezer, unified keys, device
// rules) — true unless a v1 freezer exists.
std::shared_ptr<Hierarchy> make_v2(CgroupFs& fs, const std::string& mountpoint,
                                   const std::set<std::string>& controllers,
                                   const std::string& path, bool owns_rest);

// "c 1:3 rwm" as devices.allow/deny take it; "a" for all.
std::string device_rule(const DeviceRule& d);
// A hugepage size that can be part of a file name ("2MB").
Status check_page_size(const std::string& s);

}  // namespace berth::oci::cgroups
