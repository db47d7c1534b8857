#include "plugins/content/local/local_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/digest.h"
#include "core/fd.h"
#include "core/filters.h"
#include "core/fs.h"

namespace berth::plugins::content {
namespace {

using berth::content::Info;
using berth::content::IngestStatus;

Timestamp from_timespec(const timespec& ts) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(
      std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

std::int64_t to_nanos(Timestamp t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Timestamp from_nanos(std::int64_t n) {
  return Timestamp(std::chrono::duration_cast<Timestamp::duration>(std::chrono::nanoseconds(n)));
}

std::string read_small(const std::string& path) {
  auto r = core::read_file(path);
  return r.ok() ? *r : std::string();
}

Status write_small(const std::string& path, std::string_view content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return from_errno(errno, "open \"{}\"", path);
  ssize_t n = ::write(fd, content.data(), content.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(content.size())) return from_errno(err, "write \"{}\"", path);
  return Status();
}

std::string hex_of(std::string_view digest) { return std::string(digest.substr(7)); }

}  // namespace

// A writer holds its ref locked for its lifetime. Every write appends to `data` and then saves
// the hash state, so a crash leaves at most the bytes after the last save to re-hash.
class LocalStore::LocalWriter final : public berth::content::Writer {
 public:
  LocalWriter(std::shared_ptr<LocalStore> store, std::string ref, std::string dir, int data_fd,
              int state_fd, core::Sha256 hash, IngestStatus status)
      : store_(std::move(store)),
        ref_(std::move(ref)),
        dir_(std::move(dir)),
        data_fd_(data_fd),
        state_fd_(state_fd),
        hash_(std::move(hash)),
        status_(std::move(status)) {}

  ~LocalWriter() override { close_fds(); }

  Status write(std::string_view data) override {
    BERTH_RETURN_IF_ERROR(check_open());
    std::size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(data_fd_, data.data() + done, data.size() - done,
                           status_.offset + static_cast<std::int64_t>(done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return from_errno(errno, "write ingest \"{}\"", ref_);
      }
      done += static_cast<std::size_t>(n);
    }
    hash_.update(data);
    status_.offset += static_cast<std::int64_t>(data.size());
    status_.updated_at = std::chrono::system_clock::now();
    save_state();
    return Status();
  }

  IngestStatus status() const override { return status_; }
  std::string digest() const override { return hash_.digest(); }

  Status truncate(std::int64_t size) override {
    BERTH_RETURN_IF_ERROR(check_open());
    if (size != 0) return invalid_argument("ingest \"{}\": truncate supports only size 0", ref_);
    if (::ftruncate(data_fd_, 0) < 0) return from_errno(errno, "truncate ingest \"{}\"", ref_);
    hash_ = core::Sha256();
    status_.offset = 0;
    save_state();
    return Status();
  }

  Status commit(std::int64_t size, std::string_view expected,
                const std::map<std::string, std::string>&) override {
    BERTH_RETURN_IF_ERROR(check_open());
    // A commit always ends the writer, whatever the outcome.
    struct Closer {
      LocalWriter* w;
      ~Closer() { w->close_fds(); }
    } closer{this};
    if (::fsync(data_fd_) < 0) return from_errno(errno, "fsync ingest \"{}\"", ref_);
    if (size > 0 && size != status_.offset) {
      return failed_precondition("commit of \"{}\": unexpected size {}, expected {}", ref_,
                                 status_.offset, size);
    }
    std::string actual = hash_.digest();
    if (!expected.empty() && expected != actual) {
      return failed_precondition("commit of \"{}\": unexpected digest {}, expected {}", ref_,
                                 actual, expected);
    }
    std::string target = store_->blob_path(actual);
    struct stat st {};
    if (::stat(target.c_str(), &st) == 0) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      return already_exists("content {} already exists", actual);
    }
    if (::rename((dir_ + "/data").c_str(), target.c_str()) < 0) {
      return from_errno(errno, "rename ingest \"{}\" to \"{}\"", ref_, target);
    }
    if (::chmod(target.c_str(), 0444) < 0) return from_errno(errno, "chmod \"{}\"", target);
    // The rename is durable only once the directory is: a commit acknowledged before that could
    // vanish at a power loss while the metadata already names the blob.
    std::string dir = target.substr(0, target.rfind('/'));
    core::Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::fsync(d.get()) < 0) return from_errno(errno, "fsync \"{}\"", dir);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    return Status();
  }

 private:
  Status check_open() const {
    if (data_fd_ < 0) return failed_precondition("ingest \"{}\": writer is closed", ref_);
    return Status();
  }

  void save_state() {
    std::string s = std::to_string(status_.offset) + "\n" + hash_.save();
    if (::pwrite(state_fd_, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size())) {
      (void)!::ftruncate(state_fd_, static_cast<off_t>(s.size()));
    }
  }

  void close_fds() {
    if (data_fd_ >= 0) ::close(data_fd_);
    if (state_fd_ >= 0) ::close(state_fd_);
    data_fd_ = state_fd_ = -1;
    if (store_) {
      store_->unlock_ref(ref_);
      store_.reset();
    }
  }

  std::shared_ptr<LocalStore> store_;
  std::string ref_;
  std::string dir_;
  int data_fd_;
  int state_fd_;
  core::Sha256 hash_;
  IngestStatus status_;
};

Result<std::shared_ptr<LocalStore>> LocalStore::open(const std::string& root) {
  BERTH_RETURN_IF_ERROR(core::make_dirs(root + "/blobs/sha256", 0700));
  BERTH_RETURN_IF_ERROR(core::make_dirs(root + "/ingest", 0700));
  return std::shared_ptr<LocalStore>(new LocalStore(root));
}

std::string LocalStore::blob_path(std::string_view digest) const {
  return root_ + "/blobs/sha256/" + hex_of(digest);
}

std::string LocalStore::ingest_dir(std::string_view ref) const {
  return root_ + "/ingest/" + core::Sha256::digest_of(ref).substr(7);
}

bool LocalStore::lock_ref(const std::string& ref) {
  std::lock_guard lock(mu_);
  return active_refs_.insert(ref).second;
}

void LocalStore::unlock_ref(const std::string& ref) {
  std::lock_guard lock(mu_);
  active_refs_.erase(ref);
}

Result<Info> LocalStore::info(const RequestContext&, std::string_view digest) {
  BERTH_RETURN_IF_ERROR(berth::content::validate_digest(digest));
  struct stat st {};
  std::string path = blob_path(digest);
  if (::stat(path.c_str(), &st) < 0) {
    if (errno == ENOENT) return not_found("content {} not found", digest);
    return from_errno(errno, "stat \"{}\"", path);
  }
  Info info;
  info.digest = std::string(digest);
  info.size = st.st_size;
  info.created_at = info.updated_at = from_timespec(st.st_mtim);
  return info;
}

Result<Info> LocalStore::update(const RequestContext& ctx, const Info& info,
                                const std::vector<std::string>&) {
  // The backend keeps no labels (the metadata store does); an update only checks existence.
  return this->info(ctx, info.digest);
}

Status LocalStore::walk(const RequestContext& ctx, const std::vector<std::string>& filters,
                        const berth::content::WalkFn& fn) {
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::string dir = root_ + "/blobs/sha256";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string digest = "sha256:" + entry.path().filename().string();
    if (!berth::content::validate_digest(digest).ok()) continue;
    auto info = this->info(ctx, digest);
    if (!info.ok()) continue;  // removed while walking
    if (!filter.match([&](const auto& path) { return berth::content::info_field(*info, path); }))
      continue;
    BERTH_RETURN_IF_ERROR(fn(*info));
  }
  if (ec) return from_errno(ec.value(), "read \"{}\"", dir);
  return Status();
}

Status LocalStore::remove(const RequestContext&, std::string_view digest) {
  BERTH_RETURN_IF_ERROR(berth::content::validate_digest(digest));
  std::string path = blob_path(digest);
  if (::unlink(path.c_str()) < 0) {
    if (errno == ENOENT) return not_found("content {} not found", digest);
    return from_errno(errno, "unlink \"{}\"", path);
  }
  return Status();
}

namespace {
class FileReader final : public berth::content::ReaderAt {
 public:
  FileReader(int fd, std::int64_t size) : fd_(fd), size_(size) {}
  ~FileReader() override { ::close(fd_); }
  std::int64_t size() const override { return size_; }
  Result<std::size_t> read_at(void* buf, std::size_t n, std::int64_t offset) override {
    if (offset > size_)
      return Status(Code::kOutOfRange,
                    fmt::format("offset {} is past the end ({})", offset, size_));
    for (;;) {
      ssize_t r = ::pread(fd_, buf, n, offset);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) return from_errno(errno, "read blob");
    }
  }

 private:
  int fd_;
  std::int64_t size_;
};
}  // namespace

Result<std::unique_ptr<berth::content::ReaderAt>> LocalStore::reader(const RequestContext&,
                                                                     std::string_view digest) {
  BERTH_RETURN_IF_ERROR(berth::content::validate_digest(digest));
  std::string path = blob_path(digest);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found("content {} not found", digest);
    return from_errno(errno, "open \"{}\"", path);
  }
  struct stat st {};
  ::fstat(fd, &st);
  return std::unique_ptr<berth::content::ReaderAt>(std::make_unique<FileReader>(fd, st.st_size));
}

Result<IngestStatus> LocalStore::status_of_dir(const std::string& dir) {
  IngestStatus s;
  auto ref = core::read_file(dir + "/ref");
  if (!ref.ok()) return ref.status();
  s.ref = *ref;
  struct stat st {};
  if (::stat((dir + "/data").c_str(), &st) == 0) {
    s.offset = st.st_size;
    s.updated_at = from_timespec(st.st_mtim);
  }
  std::string started = read_small(dir + "/startedat");
  // These small files are ours, but a crash can leave them empty or torn: parse leniently.
  s.started_at =
      started.empty() ? s.updated_at : from_nanos(std::strtoll(started.c_str(), nullptr, 10));
  std::string total = read_small(dir + "/total");
  if (!total.empty()) s.total = std::strtoll(total.c_str(), nullptr, 10);
  s.expected = read_small(dir + "/expected");
  return s;
}

Result<IngestStatus> LocalStore::status(const RequestContext&, std::string_view ref) {
  std::string dir = ingest_dir(ref);
  auto s = status_of_dir(dir);
  if (!s.ok() && s.status().code() == Code::kNotFound)
    return not_found("ingest \"{}\" not found", ref);
  return s;
}

Result<std::vector<IngestStatus>> LocalStore::list_statuses(
    const RequestContext&, const std::vector<std::string>& filters) {
  BERTH_TRY(auto filter, core::Filter::parse(filters));
  std::vector<IngestStatus> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(root_ + "/ingest", ec)) {
    auto s = status_of_dir(entry.path().string());
    if (!s.ok()) continue;
    bool keep =
        filter.match([&](const std::vector<std::string>& path) -> std::optional<std::string> {
          if (path.size() == 1 && path[0] == "ref") return s->ref;
          return std::nullopt;
        });
    if (keep) out.push_back(std::move(*s));
  }
  return out;
}

Status LocalStore::abort(const RequestContext&, std::string_view ref) {
  std::string r(ref);
  if (!lock_ref(r)) return unavailable("ingest \"{}\" is being written; cannot abort it", ref);
  std::string dir = ingest_dir(ref);
  std::error_code ec;
  bool existed = std::filesystem::exists(dir, ec);
  std::filesystem::remove_all(dir, ec);
  unlock_ref(r);
  if (!existed) return not_found("ingest \"{}\" not found", ref);
  if (ec) return from_errno(ec.value(), "remove \"{}\"", dir);
  return Status();
}

Result<std::unique_ptr<berth::content::Writer>> LocalStore::writer(
    const RequestContext&, const berth::content::WriterOptions& options) {
  if (options.ref.empty()) return invalid_argument("an ingest ref is required");
  if (!options.expected.empty()) {
    BERTH_RETURN_IF_ERROR(berth::content::validate_digest(options.expected));
    struct stat st {};
    if (::stat(blob_path(options.expected).c_str(), &st) == 0) {
      return already_exists("content {} already exists", options.expected);
    }
  }
  if (!lock_ref(options.ref)) {
    return unavailable("ref \"{}\" is locked by another writer", options.ref);
  }
  // From here every error path must unlock.
  auto fail = [&](Status st) -> Result<std::unique_ptr<berth::content::Writer>> {
    unlock_ref(options.ref);
    return st;
  };
  std::string dir = ingest_dir(options.ref);
  auto now = std::chrono::system_clock::now();
  bool fresh = ::mkdir(dir.c_str(), 0700) == 0;
  if (!fresh && errno != EEXIST) return fail(from_errno(errno, "mkdir \"{}\"", dir));
  if (fresh) {
    Status st = write_small(dir + "/ref", options.ref);
    if (st.ok()) st = write_small(dir + "/startedat", std::to_string(to_nanos(now)));
    if (!st.ok()) return fail(st);
  } else if (read_small(dir + "/ref") != options.ref) {
    return fail(internal_error("ingest directory \"{}\" belongs to another ref", dir));
  }
  if (options.total > 0) {
    if (Status st = write_small(dir + "/total", std::to_string(options.total)); !st.ok())
      return fail(st);
  }
  if (!options.expected.empty()) {
    if (Status st = write_small(dir + "/expected", options.expected); !st.ok()) return fail(st);
  }
  int data_fd = ::open((dir + "/data").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (data_fd < 0) return fail(from_errno(errno, "open \"{}/data\"", dir));
  int state_fd = ::open((dir + "/hashstate").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (state_fd < 0) {
    ::close(data_fd);
    return fail(from_errno(errno, "open \"{}/hashstate\"", dir));
  }
  struct stat st {};
  ::fstat(data_fd, &st);
  std::int64_t size = st.st_size;

  // Resume: start from the saved hash state and hash only what was written after it.
  core::Sha256 hash;
  std::int64_t hashed = 0;
  std::string saved = read_small(dir + "/hashstate");
  if (auto nl = saved.find('\n'); nl != std::string::npos) {
    std::int64_t at = std::atoll(saved.substr(0, nl).c_str());
    auto restored = core::Sha256::restore(std::string_view(saved).substr(nl + 1));
    if (restored.ok() && at <= size && static_cast<std::int64_t>(restored->bytes()) == at) {
      hash = *restored;
      hashed = at;
    }
  }
  std::vector<char> buf(1 << 20);
  while (hashed < size) {
    ssize_t n = ::pread(data_fd, buf.data(), buf.size(), hashed);
    if (n <= 0) break;
    hash.update(buf.data(), static_cast<std::size_t>(n));
    hashed += n;
  }
  IngestStatus status;
  status.ref = options.ref;
  status.offset = hashed;
  status.total = options.total > 0 ? options.total : std::atoll(read_small(dir + "/total").c_str());
  status.expected = options.expected.empty() ? read_small(dir + "/expected") : options.expected;
  std::string started = read_small(dir + "/startedat");
  status.started_at = started.empty() ? now : from_nanos(std::atoll(started.c_str()));
  status.updated_at = now;
  return std::unique_ptr<berth::content::Writer>(std::make_unique<LocalWriter>(
      shared_from_this(), options.ref, dir, data_fd, state_fd, std::move(hash), std::move(status)));
}

}  // namespace berth::plugins::content
