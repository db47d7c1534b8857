#include "core/ocispec/user.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "core/fd.h"
#include "core/tree.h"

namespace berth::ocispec {
namespace {

constexpr std::size_t kMaxFile = 4u << 20;

std::optional<std::uint32_t> number(std::string_view s) {
  std::uint32_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v == UINT32_MAX) return std::nullopt;
  return v;
}

// The image's `name` file ("" when it has none), never a host file, never a device or FIFO.
Result<std::string> read_image_file(int root_fd, const char* name) {
  if (root_fd < 0) return std::string();
  core::Fd path(core::open_in_root(root_fd, name, O_PATH | O_CLOEXEC));
  if (path.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::string();
    return from_errno(errno, "open the image's {}", name);
  }
  struct stat st{};
  if (::fstat(path.get(), &st) < 0) return from_errno(errno, "stat the image's {}", name);
  if (!S_ISREG(st.st_mode)) return invalid_argument("the image's {} is not a regular file", name);
  if (static_cast<std::uint64_t>(st.st_size) > kMaxFile)
    return invalid_argument("the image's {} is larger than {} bytes", name, kMaxFile);
  // Reopened for reading through the descriptor: the same file, no second path walk.
  core::Fd fd(::open(("/proc/self/fd/" + std::to_string(path.get())).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return from_errno(errno, "read the image's {}", name);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return from_errno(errno, "read the image's {}", name);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxFile) return invalid_argument("the image's {} is larger than {} bytes", name, kMaxFile);
  }
  return out;
}

// The colon-separated fields of each line that has at least `min_fields` (comments, blank lines
// and NIS "+"/"-" entries skipped).
std::vector<std::vector<std::string_view>> entries(std::string_view text, std::size_t min_fields) {
  std::vector<std::vector<std::string_view>> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.empty() || line[0] == '#' || line[0] == '+' || line[0] == '-') continue;
    std::vector<std::string_view> f;
    while (true) {
      auto c = line.find(':');
      f.push_back(line.substr(0, c));
      if (c == std::string_view::npos) break;
      line = line.substr(c + 1);
    }
    if (f.size() >= min_fields) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

bool user_needs_lookup(std::string_view spec) {
  auto colon = spec.find(':');
  if (!number(spec.substr(0, colon))) return true;
  return colon != std::string_view::npos && !number(spec.substr(colon + 1));
}

Result<User> resolve_user(int root_fd, std::string_view spec) {
  if (spec.empty()) return invalid_argument("user: empty");
  if (spec.size() > 512) return invalid_argument("user: longer than 512 characters");
  auto colon = spec.find(':');
  std::string_view user = spec.substr(0, colon);
  std::optional<std::string_view> group;
  if (colon != std::string_view::npos) group = spec.substr(colon + 1);
  if (user.empty() || (group && group->empty())) return invalid_argument("user \"{}\": empty name", spec);
  if (root_fd < 0 && user_needs_lookup(spec))
    return invalid_argument("user \"{}\": names need the image's /etc/passwd", spec);

  BERTH_TRY(auto passwd, read_image_file(root_fd, "/etc/passwd"));
  User u;
  std::string name;  // the user's name, for its supplementary groups
  bool have_primary = false;
  auto uid = number(user);
  for (const auto& f : entries(passwd, 4)) {
    auto id = number(f[2]);
    auto gid = number(f[3]);
    if (!id || !gid) continue;
    if (uid ? *id == *uid : f[0] == user) {
      u.uid = *id;
      u.gid = *gid;
      name = std::string(f[0]);
      have_primary = true;
      break;
    }
  }
  if (!have_primary) {
    if (!uid) return invalid_argument("user \"{}\": no such user in the image's /etc/passwd", user);
    u.uid = *uid;
    u.gid = 0;
  }

  std::string groups_text;
  if (group || !name.empty()) {
    BERTH_TRY(groups_text, read_image_file(root_fd, "/etc/group"));
  }
  auto groups = entries(groups_text, 3);
  if (group) {
    if (auto gid = number(*group)) {
      u.gid = *gid;
    } else {
      bool found = false;
      for (const auto& f : groups) {
        auto id = number(f[2]);
        if (f[0] == *group && id) {
          u.gid = *id;
          found = true;
          break;
        }
      }
      if (!found) return invalid_argument("group \"{}\": no such group in the image's /etc/group", *group);
    }
  }
  if (!name.empty()) {
    for (const auto& f : groups) {
      auto id = number(f[2]);
      if (!id || f.size() < 4 || *id == u.gid) continue;
      std::string_view members = f[3];
      while (!members.empty()) {
        auto comma = members.find(',');
        std::string_view m = members.substr(0, comma);
        members = comma == std::string_view::npos ? std::string_view() : members.substr(comma + 1);
        if (m == name) {
          if (std::find(u.additional_gids.begin(), u.additional_gids.end(), *id) == u.additional_gids.end())
            u.additional_gids.push_back(*id);
          break;
        }
      }
    }
  }
  return u;
}

}  // namespace berth::ocispec
