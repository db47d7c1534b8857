#include "core/oci/devices_bpf.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace berth::oci::devices {
namespace {

constexpr std::uint32_t kMknod = BPF_DEVCG_ACC_MKNOD, kRead = BPF_DEVCG_ACC_READ,
                        kWrite = BPF_DEVCG_ACC_WRITE, kAll = kMknod | kRead | kWrite;

struct Rule {
  bool allow;
  std::uint32_t type;  // BPF_DEVCG_DEV_*, 0 = any
  std::int64_t major = -1, minor = -1;
  std::uint32_t access;
};

std::uint32_t access_bits(const std::string& a) {
  if (a.empty()) return kAll;
  std::uint32_t bits = 0;
  for (char c : a) {
    if (c == 'm') bits |= kMknod;
    if (c == 'r') bits |= kRead;
    if (c == 'w') bits |= kWrite;
  }
  return bits;
}

// cgroup v1's model: a default, and the exceptions after the last rule that set it.
struct Policy {
  bool default_allow = true;
  std::vector<Rule> exceptions;
};

Policy policy(const std::vector<DeviceRule>& rules) {
  Policy p;
  for (const auto& d : rules) {
    Rule r{d.allow,
           d.type == "c"   ? std::uint32_t{BPF_DEVCG_DEV_CHAR}
           : d.type == "b" ? std::uint32_t{BPF_DEVCG_DEV_BLOCK}
                           : 0,
           d.major.value_or(-1), d.minor.value_or(-1), access_bits(d.access)};
    if (r.type == 0 && r.major < 0 && r.minor < 0 && r.access == kAll) {
      p.default_allow = r.allow;
      p.exceptions.clear();
      continue;
    }
    // A rule for the same devices as the default decides nothing.
    p.exceptions.push_back(r);
  }
  return p;
}

bpf_insn insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
              std::int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

std::vector<bpf_insn> instructions(const std::vector<DeviceRule>& rules) {
  Policy p = policy(rules);
  std::vector<bpf_insn> out = {
      // r2 = access_type; r3 = r2; w2 &= 0xffff (type); w3 >>= 16 (access)
      insn(BPF_LDX | BPF_W | BPF_MEM, 2, 1, 0, 0),
      insn(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0),
      insn(BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff),
      insn(BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16),
      // r4 = major, r5 = minor
      insn(BPF_LDX | BPF_W | BPF_MEM, 4, 1, 4, 0),
      insn(BPF_LDX | BPF_W | BPF_MEM, 5, 1, 8, 0),
  };
  // The last matching rule decides: the exceptions are checked from the last one.
  for (auto it = p.exceptions.rbegin(); it != p.exceptions.rend(); ++it) {
    const Rule& r = *it;
    std::vector<bpf_insn> block;
    std::vector<std::size_t> jumps;  // indexes of "not this rule" jumps, to the block's end
    auto skip_unless = [&](std::uint8_t op, std::uint8_t reg, std::int32_t imm) {
      jumps.push_back(block.size());
      block.push_back(insn(BPF_JMP | op | BPF_K, reg, 0, 0, imm));
    };
    if (r.type) skip_unless(BPF_JNE, 2, static_cast<std::int32_t>(r.type));
    if (r.allow && r.access != kAll) {  // every access asked for must be granted
      block.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, 6, 3, 0, 0));
      block.push_back(
          insn(BPF_ALU | BPF_AND | BPF_K, 6, 0, 0, static_cast<std::int32_t>(~r.access & kAll)));
      skip_unless(BPF_JNE, 6, 0);
    } else if (!r.allow && r.access != kAll) {  // any access it covers is refused
      block.push_back(insn(BPF_ALU | BPF_MOV | BPF_X, 6, 3, 0, 0));
      block.push_back(
          insn(BPF_ALU | BPF_AND | BPF_K, 6, 0, 0, static_cast<std::int32_t>(r.access)));
      skip_unless(BPF_JEQ, 6, 0);
    }
    if (r.major >= 0) skip_unless(BPF_JNE, 4, static_cast<std::int32_t>(r.major));
    if (r.minor >= 0) skip_unless(BPF_JNE, 5, static_cast<std::int32_t>(r.minor));
    block.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, r.allow ? 1 : 0));
    block.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (std::size_t j : jumps) block[j].off = static_cast<std::int16_t>(block.size() - j - 1);
    out.insert(out.end(), block.begin(), block.end());
  }
  out.push_back(insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, p.default_allow ? 1 : 0));
  out.push_back(insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  return out;
}

long bpf(int cmd, bpf_attr& attr) { return ::syscall(SYS_bpf, cmd, &attr, sizeof attr); }

Result<core::Fd> load(const std::vector<bpf_insn>& code) {
  static const char kLicense[] = "Apache";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = reinterpret_cast<std::uint64_t>(code.data());
  attr.insn_cnt = static_cast<std::uint32_t>(code.size());
  attr.license = reinterpret_cast<std::uint64_t>(kLicense);
  core::Fd fd(static_cast<int>(bpf(BPF_PROG_LOAD, attr)));
  if (fd.get() >= 0) return fd;
  int err = errno;
  // Again with the verifier's log, for the message.
  std::string log(64 * 1024, '\0');
  attr.log_buf = reinterpret_cast<std::uint64_t>(log.data());
  attr.log_size = static_cast<std::uint32_t>(log.size());
  attr.log_level = 1;
  core::Fd again(static_cast<int>(bpf(BPF_PROG_LOAD, attr)));
  if (again.get() >= 0) return again;
  log.resize(std::strlen(log.c_str()));
  return from_errno(err, "bpf(BPF_PROG_LOAD) of the device program ({} instructions){}",
                    code.size(), log.empty() ? "" : ": " + log);
}

}  // namespace

std::vector<std::uint64_t> program(const std::vector<DeviceRule>& rules) {
  auto code = instructions(rules);
  std::vector<std::uint64_t> out(code.size());
  std::memcpy(out.data(), code.data(), code.size() * sizeof(bpf_insn));
  return out;
}

Status apply(const std::string& dir, const std::vector<DeviceRule>& rules) {
  core::Fd cg(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cg.get() < 0) return from_errno(errno, "open cgroup {}", dir);
  BERTH_TRY(auto prog, load(instructions(rules)));
  // What is attached now (an earlier apply), to detach once the new program is in place.
  std::vector<std::uint32_t> old(64);
  bpf_attr q{};
  q.query.target_fd = static_cast<std::uint32_t>(cg.get());
  q.query.attach_type = BPF_CGROUP_DEVICE;
  q.query.prog_ids = reinterpret_cast<std::uint64_t>(old.data());
  q.query.prog_cnt = static_cast<std::uint32_t>(old.size());
  old.resize(bpf(BPF_PROG_QUERY, q) == 0 ? q.query.prog_cnt : 0);
  bpf_attr a{};
  a.target_fd = static_cast<std::uint32_t>(cg.get());
  a.attach_bpf_fd = static_cast<std::uint32_t>(prog.get());
  a.attach_type = BPF_CGROUP_DEVICE;
  a.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf(BPF_PROG_ATTACH, a) < 0)
    return from_errno(errno, "bpf(BPF_PROG_ATTACH) of the device program to {}", dir);
  for (std::uint32_t id : old) {
    bpf_attr g{};
    g.prog_id = id;
    core::Fd fd(static_cast<int>(bpf(BPF_PROG_GET_FD_BY_ID, g)));
    if (fd.get() < 0) continue;
    bpf_attr d{};
    d.target_fd = static_cast<std::uint32_t>(cg.get());
    d.attach_bpf_fd = static_cast<std::uint32_t>(fd.get());
    d.attach_type = BPF_CGROUP_DEVICE;
    if (bpf(BPF_PROG_DETACH, d) < 0)
      return from_errno(errno, "bpf(BPF_PROG_DETACH) of the previous device program of {}", dir);
  }
  return Status();
}

}  // namespace berth::oci::devices
