#include "tests/e2e/powerloss.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "core/copy.h"

namespace berth::e2e {
namespace {

struct File {
  std::int64_t size = 0, synced = 0;
};

struct Op {
  char kind;  // C M R U X
  std::string a, b, stash;
  File state;  // of an unlinked file
  bool durable = false;
};

std::string parent(const std::string& p) { return p.substr(0, p.rfind('/')); }

}  // namespace

Result<PowerLoss> lose_power(const std::string& log_path) {
  std::ifstream in(log_path);
  if (!in) return not_found("power-loss log \"{}\"", log_path);
  std::map<std::string, File> files;
  std::vector<Op> ops;
  PowerLoss out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    char kind = 0;
    f >> kind;
    std::string a, b, c;
    f >> a >> b >> c;
    switch (kind) {
      case 'C':
        files[a] = {};
        ops.push_back({'C', a});
        break;
      case 'M': ops.push_back({'M', a}); break;
      case 'W': files[a].size = std::max<std::int64_t>(files[a].size, std::stoll(b)); break;
      case 'T': {
        File& st = files[a];
        st.size = static_cast<std::int64_t>(std::stoll(b));
        st.synced = std::min(st.synced, st.size);
        break;
      }
      case 'S': files[a].synced = files[a].size; break;
      case 'D':
        for (auto& op : ops) {
          if (op.durable) continue;
          const std::string& where = op.kind == 'R' ? op.b : op.a;
          if (parent(where) == a) op.durable = true;
        }
        break;
      case 'A':
        for (auto& [p, st] : files) st.synced = st.size;
        for (auto& op : ops) op.durable = true;
        break;
      case 'R': {
        File st = files.count(a) ? files[a] : File{};
        files.erase(a);
        files[b] = st;
        ops.push_back({'R', a, b, c});
        break;
      }
      case 'U': {
        Op op{'U', a, "", b};
        if (auto it = files.find(a); it != files.end()) {
          op.state = it->second;
          files.erase(it);
        }
        ops.push_back(op);
        break;
      }
      case 'X': ops.push_back({'X', a}); break;
      case 'K': ++out.unrecoverable; break;
      default: break;
    }
  }
  // Unsynced tails go.
  for (const auto& [p, st] : files) {
    struct stat now {};
    if (st.size > st.synced && ::lstat(p.c_str(), &now) == 0 && S_ISREG(now.st_mode) &&
        now.st_size > st.synced) {
      if (::truncate(p.c_str(), st.synced) == 0) ++out.truncated;
    }
  }
  // Operations that never became durable are undone, the last first.
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    const Op& op = *it;
    if (op.durable) continue;
    std::error_code ec;
    switch (op.kind) {
      case 'C': ::unlink(op.a.c_str()); break;
      case 'M': core::remove_tree(op.a).ignore(); break;
      case 'R':
        ::rename(op.b.c_str(), op.a.c_str());
        if (op.stash != "-") ::link(op.stash.c_str(), op.b.c_str());
        break;
      case 'U':
        if (op.stash != "-" && ::link(op.stash.c_str(), op.a.c_str()) == 0)
          ::truncate(op.a.c_str(), op.state.synced);
        break;
      case 'X': ::mkdir(op.a.c_str(), 0755); break;
    }
    ++out.undone;
  }
  return out;
}

}  // namespace berth::e2e
