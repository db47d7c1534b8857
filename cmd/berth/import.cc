// berth images import FILE|DIR|-: an OCI image layout (directory, tar, or compressed tar) or a
// docker-archive (`docker save`) into berthd, then unpacked into a snapshotter.
//
// The input is streamed: each file of the archive goes straight into the content store as it is
// read (blobs/<alg>/<hex> with its digest checked by the daemon), so nothing is copied to a
// temporary file and a multi-gigabyte archive can come from a pipe. Only the small JSON documents
// (oci-layout, index.json, manifest.json) are kept in memory. Names follow ctr's import:
// io.containerd.image.name, else org.opencontainers.image.ref.name (a bare tag gets --base-name,
// or "import-<date>", in front); docker-archive RepoTags are normalised (busybox ->
// docker.io/library/busybox:latest) and the Docker manifests are gathered in a new OCI index.
// One file (~560 lines): the streaming reader, the walk that labels and names, and the command
// share the archive-format decisions above.
#include <archive.h>
#include <archive_entry.h>
#include <berth/content.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "core/archive_text.h"
#include "core/time.h"

namespace berth::cli {
namespace {

namespace fs = std::filesystem;
namespace mt = model::media_type;
using nlohmann::json;

constexpr std::size_t kJsonLimit = 20 << 20;

struct Options {
  std::string source;
  std::string base_name, index_name, platform, snapshotter = "overlayfs";
  bool digests = false, skip_digest_for_named = false, all_platforms = false, no_unpack = false;
  bool quiet = false;
};

// "./a//b/" -> "a/b", "a/../b" -> "b" (names are only keys here; nothing is written by name).
std::string clean(std::string_view name) {
  std::vector<std::string> parts;
  std::size_t i = 0;
  while (i <= name.size()) {
    std::size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view part = name.substr(i, j - i);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.emplace_back(part);
    }
    i = j + 1;
  }
  return join(parts, "/", "");
}

struct Blob {
  std::string digest;
  std::int64_t size = 0;
  std::string magic;  // the first bytes, to tell gzip from plain tar
};

// Reports progress on stderr: one updating line on a terminal, a line per large blob otherwise.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(2) == 1) {}
  void blob(const std::string& name, std::int64_t size) {
    total_ += size;
    ++count_;
    if (quiet_) return;
    if (tty_) {
      std::cerr << "\r\033[Kimporting: " << count_ << " files, " << human_size(total_) << "  "
                << name.substr(0, 60) << std::flush;
    } else if (size >= (1 << 20)) {
      std::cerr << "imported " << name << " (" << human_size(size) << ")\n";
    }
  }
  void done() {
    if (quiet_) return;
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << "imported " << count_ << " files, " << human_size(total_) << "\n";
  }
  void line(const std::string& s) {
    if (!quiet_) std::cerr << s << "\n";
  }

 private:
  bool quiet_, tty_;
  std::int64_t total_ = 0;
  std::size_t count_ = 0;
};

// One pass over the input, collecting what the archive holds.
class Reader {
 public:
  Reader(Client& c, const std::string& lease, Progress& progress)
      : c_(c),
        lease_(lease),
        progress_(progress),
        prefix_("import-" + std::to_string(::getpid()) + "-" + std::to_string(::time(nullptr))) {}

  std::optional<std::string> oci_layout, index_json, manifest_json;
  std::map<std::string, Blob> blobs;
  std::map<std::string, std::string> symlinks;

  // A regular file of the archive; `read` yields its bytes.
  Status file(const std::string& raw_name, std::int64_t size, const ContentReader& read) {
    std::string name = clean(raw_name);
    if (name == "oci-layout") return small(name, size, read, oci_layout);
    if (name == "manifest.json") return small(name, size, read, manifest_json);
    if (name == "repositories") return Status();  // docker's legacy tag file; manifest.json wins
    if (name == "index.json") BERTH_RETURN_IF_ERROR(small(name, size, read, index_json));
    std::string expected;
    if (name.rfind("blobs/", 0) == 0 && std::count(name.begin(), name.end(), '/') == 2) {
      auto slash = name.find('/', 6);
      expected = name.substr(6, slash - 6) + ":" + name.substr(slash + 1);
      if (Status st = content::validate_digest(expected); !st.ok())
        return invalid_argument("\"{}\" in the image layout: {}", name, st.message());
    }
    Blob b;
    b.size = size;
    ContentReader tee = read;
    if (name == "index.json") {
      std::size_t pos = 0;
      tee = [this, &pos](char* buf, std::size_t n) -> Result<std::size_t> {
        std::size_t k = std::min(n, index_json->size() - pos);
        std::memcpy(buf, index_json->data() + pos, k);
        pos += k;
        return k;
      };
    }
    auto r = write_content(
        c_,
        [&](char* buf, std::size_t n) -> Result<std::size_t> {
          BERTH_TRY(auto got, tee(buf, n));
          if (b.magic.size() < 4) b.magic.append(buf, std::min<std::size_t>(got, 4));
          return got;
        },
        {.ref = prefix_ + "-" + name, .size = size, .expected = expected, .lease = lease_});
    if (!r.ok())
      return Status(r.status().code(), fmt::format("\"{}\": {}", name, r.status().message()));
    b.digest = *r;
    blobs[name] = b;
    progress_.blob(name, size);
    return Status();
  }
  void symlink(const std::string& name, const std::string& target) {
    std::string n = clean(name);
    auto slash = n.rfind('/');
    symlinks[n] = clean((slash == std::string::npos ? "" : n.substr(0, slash + 1)) + target);
  }

 private:
  Status small(const std::string& name, std::int64_t size, const ContentReader& read,
               std::optional<std::string>& out) {
    if (size < 0 || static_cast<std::size_t>(size) > kJsonLimit)
      return invalid_argument("\"{}\" is {} bytes, more than the {} allowed", name, size,
                              kJsonLimit);
    std::string body(static_cast<std::size_t>(size), '\0');
    BERTH_TRY(auto got, read(body.data(), body.size()));
    if (got != body.size()) return invalid_argument("\"{}\" is truncated", name);
    out = std::move(body);
    return Status();
  }

  Client& c_;
  std::string lease_;
  Progress& progress_;
  std::string prefix_;
};

Status read_archive(Reader& r, const std::string& source) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  archive_read_support_filter_all(a.get());
  int rc = source == "-" ? archive_read_open_fd(a.get(), 0, 1 << 20)
                         : archive_read_open_filename(a.get(), source.c_str(), 1 << 20);
  std::string shown = source == "-" ? "standard input" : "\"" + source + "\"";
  if (rc != ARCHIVE_OK)
    return invalid_argument("import: cannot read {}: {}", shown, core::archive_error(a.get()));
  archive_entry* e = nullptr;
  for (;;) {
    rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
      return invalid_argument("import: {} is not a readable tar archive: {}", shown,
                              core::archive_error(a.get()));
    std::string name = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    auto type = archive_entry_filetype(e);
    if (type == AE_IFLNK) {
      r.symlink(name, archive_entry_symlink(e) ? archive_entry_symlink(e) : "");
      continue;
    }
    if (type != AE_IFREG) continue;
    BERTH_RETURN_IF_ERROR(
        r.file(name, archive_entry_size(e), [&](char* buf, std::size_t n) -> Result<std::size_t> {
          std::size_t got = 0;
          while (got < n) {
            la_ssize_t k = archive_read_data(a.get(), buf + got, n - got);
            if (k < 0)
              return invalid_argument("reading \"{}\" from {}: {}", name, shown,
                                      core::archive_error(a.get()));
            if (k == 0) break;
            got += static_cast<std::size_t>(k);
          }
          return got;
        }));
  }
  return Status();
}

Status read_directory(Reader& r, const std::string& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_symlink()) {
      r.symlink(rel, fs::read_symlink(it->path()).string());
      continue;
    }
    if (!it->is_regular_file()) continue;
    std::ifstream in(it->path(), std::ios::binary);
    if (!in) return invalid_argument("import: cannot open \"{}\"", it->path().string());
    BERTH_RETURN_IF_ERROR(r.file(rel, static_cast<std::int64_t>(it->file_size()),
                                 [&](char* buf, std::size_t n) -> Result<std::size_t> {
                                   in.read(buf, static_cast<std::streamsize>(n));
                                   if (in.bad())
                                     return invalid_argument("reading \"{}\"", it->path().string());
                                   return static_cast<std::size_t>(in.gcount());
                                 }));
  }
  if (ec) return invalid_argument("import: walking \"{}\": {}", dir, ec.message());
  return Status();
}

Result<json> parse_json(const std::string& name, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return invalid_argument("\"{}\" is not valid JSON", name);
  return j;
}

// A docker-archive: one Docker schema 2 manifest per manifest.json entry, in a new OCI index.
Result<model::Descriptor> docker_index(Client& c, Reader& r, const std::string& lease) {
  BERTH_TRY(auto list, parse_json("manifest.json", *r.manifest_json));
  if (!list.is_array()) return invalid_argument("manifest.json: must be an array");
  for (const auto& [name, target] : r.symlinks) {
    auto it = r.blobs.find(target);
    if (it == r.blobs.end())
      return invalid_argument(
          "manifest.json: symlink \"{}\" points to \"{}\", which is not in "
          "the archive",
          name, target);
    r.blobs[name] = it->second;
  }
  json index = {{"schemaVersion", 2}, {"mediaType", mt::kOciIndex}, {"manifests", json::array()}};
  for (std::size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    std::string where = fmt::format("manifest.json[{}]", i);
    if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string())
      return invalid_argument("{}.Config: must be a string", where);
    auto cfg = r.blobs.find(clean(m["Config"].get<std::string>()));
    if (cfg == r.blobs.end())
      return invalid_argument("{}.Config: \"{}\" is not in the archive", where,
                              m["Config"].get<std::string>());
    json layers = json::array();
    if (!m.contains("Layers") || !m["Layers"].is_array())
      return invalid_argument("{}.Layers: must be an array", where);
    for (std::size_t k = 0; k < m["Layers"].size(); ++k) {
      const json& l = m["Layers"][k];
      if (!l.is_string()) return invalid_argument("{}.Layers[{}]: must be a string", where, k);
      auto it = r.blobs.find(clean(l.get<std::string>()));
      if (it == r.blobs.end())
        return invalid_argument("{}.Layers[{}]: \"{}\" is not in the archive", where, k,
                                l.get<std::string>());
      const std::string& magic = it->second.magic;
      std::string type;
      if (magic.size() >= 2 && magic[0] == '\x1f' && magic[1] == '\x8b')
        type = "application/vnd.docker.image.rootfs.diff.tar.gzip";
      else if (magic.size() >= 4 && magic.compare(0, 4, "\x28\xb5\x2f\xfd") == 0)
        return invalid_argument(
            "{}.Layers[{}]: zstd layers cannot be described by a Docker "
            "manifest",
            where, k);
      else
        type = "application/vnd.docker.image.rootfs.diff.tar";
      layers.push_back(
          {{"mediaType", type}, {"digest", it->second.digest}, {"size", it->second.size}});
    }
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", mt::kDockerManifest},
                     {"config",
                      {{"mediaType", mt::kDockerConfig},
                       {"digest", cfg->second.digest},
                       {"size", cfg->second.size}}},
                     {"layers", layers}};
    std::string body = manifest.dump();
    BERTH_TRY(auto digest,
              put_bytes(c, body, "import-docker-manifest-" + std::to_string(i), {}, lease));
    json desc = {{"mediaType", mt::kDockerManifest}, {"digest", digest}, {"size", body.size()}};
    BERTH_TRY(auto config_body, read_blob(c, cfg->second.digest));
    auto config = model::parse_config(config_body);
    if (!config.ok()) return invalid_argument("{}: config: {}", where, config.status().message());
    desc["platform"] = {{"os", config->platform.os},
                        {"architecture", config->platform.architecture}};
    if (!config->platform.variant.empty()) desc["platform"]["variant"] = config->platform.variant;
    std::vector<std::string> tags;
    if (m.contains("RepoTags") && m["RepoTags"].is_array()) {
      for (const auto& t : m["RepoTags"]) {
        if (t.is_string()) tags.push_back(t.get<std::string>());
      }
    }
    if (tags.empty()) index["manifests"].push_back(desc);
    for (const auto& t : tags) {
      auto normalized = model::normalize_reference(t);
      if (!normalized.ok())
        return invalid_argument("{}.RepoTags: \"{}\": {}", where, t, normalized.status().message());
      json tagged = desc;
      auto colon = normalized->rfind(':');
      tagged["annotations"] = {
          {"io.containerd.image.name", *normalized},
          {"org.opencontainers.image.ref.name", normalized->substr(colon + 1)}};
      index["manifests"].push_back(tagged);
    }
  }
  std::string body = index.dump();
  BERTH_TRY(auto digest, put_bytes(c, body, "import-docker-index", {}, lease));
  model::Descriptor d;
  d.media_type = std::string(mt::kOciIndex);
  d.digest = digest;
  d.size = static_cast<std::int64_t>(body.size());
  return d;
}

// ctr's name rules for an index entry; "" when the entry gets no name.
std::string image_name(const Options& o, const std::string& prefix,
                       const std::map<std::string, std::string>& annotations) {
  if (auto it = annotations.find("io.containerd.image.name");
      it != annotations.end() && !it->second.empty())
    return it->second;
  auto it = annotations.find("org.opencontainers.image.ref.name");
  if (it == annotations.end() || it->second.empty()) return "";
  const std::string& ref = it->second;
  if (ref.find_first_of("/:@") == std::string::npos) return prefix + ":" + ref;
  if (!o.base_name.empty()) {
    // With --base-name, full references must be under it.
    if (ref.rfind(o.base_name, 0) != 0) return "";
    if (ref.size() > o.base_name.size() &&
        std::string_view("/:@").find(ref[o.base_name.size()]) == std::string_view::npos)
      return "";
  }
  return ref;
}

// Walks from the top index, labelling every parent with its (platform-filtered) children so the
// garbage collector keeps them, and returns the images to create.
class Walker {
 public:
  Walker(Client& c, const Options& o, const std::string& lease, std::optional<model::Platform> only,
         bool strict)
      : c_(c), o_(o), lease_(lease), only_(std::move(only)), strict_(strict) {}

  std::vector<std::pair<std::string, json>> images;

  Status walk(const model::Descriptor& d, bool top, int depth) {
    if (depth > 8) return invalid_argument("index {} nests more than 8 levels deep", d.digest);
    if (!visited_.insert(d.digest).second) return Status();
    if (mt::is_manifest(d.media_type)) {
      BERTH_TRY(auto body, read_blob(c_, d.digest));
      auto m = model::parse_manifest(body);
      if (!m.ok()) return invalid_argument("manifest {}: {}", d.digest, m.status().message());
      std::map<std::string, std::string> labels = {
          {"containerd.io/gc.ref.content.config", m->config.digest}};
      for (std::size_t i = 0; i < m->layers.size(); ++i)
        labels[fmt::format("containerd.io/gc.ref.content.l.{}", i)] = m->layers[i].digest;
      return label_content(c_, d.digest, labels, lease_);
    }
    if (!mt::is_index(d.media_type)) return Status();  // configs, layers, unknown: leaves
    BERTH_TRY(auto body, read_blob(c_, d.digest));
    BERTH_TRY(auto j, parse_json(d.digest, body));
    auto idx = model::parse_index(body);
    if (!idx.ok()) return invalid_argument("index {}: {}", d.digest, idx.status().message());
    std::map<std::string, std::string> labels;
    std::size_t manifests = 0, others = 0;
    for (std::size_t i = 0; i < idx->manifests.size(); ++i) {
      const auto& e = idx->manifests[i];
      if (top) {
        std::string name = image_name(o_, prefix(), e.descriptor.annotations);
        if (!name.empty()) images.emplace_back(name, j["manifests"][i]);
        if (o_.digests && !(o_.skip_digest_for_named && !name.empty()))
          images.emplace_back(prefix() + "@" + e.descriptor.digest, j["manifests"][i]);
      }
      if (e.platform && only_ && !matches(*e.platform)) continue;
      if (mt::is_manifest(e.descriptor.media_type))
        labels[fmt::format("containerd.io/gc.ref.content.m.{}", manifests++)] = e.descriptor.digest;
      else
        labels[fmt::format("containerd.io/gc.ref.content.{}", others++)] = e.descriptor.digest;
      Status st = walk(e.descriptor, false, depth + 1);
      if (!st.ok()) {
        return Status(st.code(), fmt::format("{} (listed in index {})", st.message(), d.digest));
      }
    }
    if (labels.empty()) return Status();
    return label_content(c_, d.digest, labels, lease_);
  }

  std::string prefix() const {
    if (!o_.base_name.empty()) return o_.base_name;
    auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    return fmt::format("import-{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  }

 private:
  bool matches(const model::Platform& p) const {
    if (strict_) return model::normalize(p) == model::normalize(*only_);
    return model::match_rank(*only_, p).has_value();
  }
  Client& c_;
  const Options& o_;
  std::string lease_;
  std::optional<model::Platform> only_;
  bool strict_;
  std::set<std::string> visited_;
};

Status import_images(Client& c, const Options& o, bool json_output) {
  BERTH_TRY(auto platform, platform_option(o.platform));
  struct stat st {};
  if (o.source != "-" && ::stat(o.source.c_str(), &st) < 0)
    return from_errno(errno, "import: \"{}\"", o.source);
  BERTH_TRY(auto held, CommandLease::create(c, "import"));
  const std::string& lease = held.id();

  Progress progress(o.quiet);
  Reader r(c, lease, progress);
  if (o.source != "-" && S_ISDIR(st.st_mode)) {
    BERTH_RETURN_IF_ERROR(read_directory(r, o.source));
  } else {
    BERTH_RETURN_IF_ERROR(read_archive(r, o.source));
  }
  progress.done();

  model::Descriptor index;
  if (r.oci_layout) {
    BERTH_TRY(auto layout, parse_json("oci-layout", *r.oci_layout));
    if (!layout.is_object() || !layout.contains("imageLayoutVersion") ||
        !layout["imageLayoutVersion"].is_string())
      return invalid_argument("oci-layout: imageLayoutVersion must be a string");
    if (layout["imageLayoutVersion"] != "1.0.0")
      return invalid_argument("oci-layout: unsupported imageLayoutVersion \"{}\" (1.0.0 is known)",
                              layout["imageLayoutVersion"].get<std::string>());
    if (!r.index_json) return invalid_argument("OCI image layout without index.json");
    index.media_type = std::string(mt::kOciIndex);
    index.digest = r.blobs["index.json"].digest;
    index.size = static_cast<std::int64_t>(r.index_json->size());
  } else if (r.manifest_json) {
    BERTH_TRY(index, docker_index(c, r, lease));
  } else {
    return invalid_argument(
        "import: {} is neither an OCI image layout (no oci-layout file) nor a docker-archive (no "
        "manifest.json)",
        o.source == "-" ? "standard input" : "\"" + o.source + "\"");
  }

  std::optional<model::Platform> only;
  if (!o.all_platforms) only = platform;
  Walker w(c, o, lease, only, !o.platform.empty());
  BERTH_RETURN_IF_ERROR(w.walk(index, true, 0));
  auto images = w.images;
  if (!o.index_name.empty()) images.emplace_back(o.index_name, descriptor_json(index));
  if (images.empty()) {
    return invalid_argument(
        "import: no image names in the archive's index (use --base-name, --digests or "
        "--index-name to name them)");
  }

  // Unpack first, then name: an image whose layers cannot be applied is not recorded at all.
  struct Named {
    std::string name;
    model::Descriptor target;
    json entry;
  };
  std::vector<Named> named;
  std::map<std::string, std::string> unpacked;  // target digest -> chain ID
  for (const auto& [name, desc] : images) {
    Named n{name, {}, {}};
    n.target.media_type = desc.value("mediaType", "");
    n.target.digest = desc.value("digest", "");
    n.target.size = desc.value("size", std::int64_t{0});
    if (desc.contains("annotations") && desc["annotations"].is_object()) {
      for (const auto& [k, v] : desc["annotations"].items())
        if (v.is_string()) n.target.annotations[k] = v.get<std::string>();
    }
    n.entry = {{"name", name}, {"digest", n.target.digest}};
    if (!o.no_unpack && !unpacked.count(n.target.digest)) {
      auto resolved = resolve_image(c, n.target, platform);
      if (!resolved.ok()) {
        // An image with no manifest for the platform is imported but cannot be unpacked here.
        if (resolved.status().code() != Code::kNotFound)
          return Status(resolved.status().code(),
                        fmt::format("unpack {}: {}", name, resolved.status().message()));
        progress.line(fmt::format("not unpacking {}: {}", name, resolved.status().message()));
      } else {
        auto chain = unpack(c, *resolved, o.snapshotter, lease,
                            [&](std::size_t i, const model::Descriptor& l, std::string_view what) {
                              progress.line(fmt::format("unpack {} layer {} {} {}", name, i,
                                                        l.digest.substr(0, 19), what));
                            });
        if (!chain.ok())
          return Status(chain.status().code(),
                        fmt::format("unpack {}: {}", name, chain.status().message()));
        unpacked[n.target.digest] = *chain;
      }
    }
    if (auto it = unpacked.find(n.target.digest); it != unpacked.end()) {
      n.entry["chain_id"] = it->second;
      n.entry["snapshotter"] = o.snapshotter;
    }
    named.push_back(std::move(n));
  }
  json out = json::array();
  for (const auto& n : named) {
    BERTH_RETURN_IF_ERROR(save_image(c, n.name, n.target, lease));
    out.push_back(n.entry);
    if (!json_output) std::cout << n.name << " " << n.target.digest << "\n";
  }
  if (json_output) print_json(std::cout, out);
  return Status();
}

}  // namespace

void add_import_command(CLI::App& images, const GlobalOptions& global) {
  auto o = std::make_shared<Options>();
  auto* cmd = images.add_subcommand(
      "import", "import an OCI image layout (dir or tar) or a docker-archive: FILE|DIR|-");
  cmd->add_option("source", o->source,
                  "tar file (optionally compressed), directory, or - for stdin")
      ->required();
  cmd->add_option("--base-name", o->base_name, "name prefix for tag-only references");
  cmd->add_flag("--digests", o->digests, "also name every image <prefix>@<digest>");
  cmd->add_flag("--skip-digest-for-named", o->skip_digest_for_named,
                "with --digests: only for images without a name");
  cmd->add_option("--index-name", o->index_name, "name the whole index as one image");
  cmd->add_option("--platform", o->platform,
                  "import and unpack only this platform (os/arch[/variant])");
  cmd->add_flag("--all-platforms", o->all_platforms, "keep every platform's content");
  cmd->add_flag("--no-unpack", o->no_unpack, "do not unpack into the snapshotter");
  cmd->add_option("--snapshotter", o->snapshotter, "snapshotter to unpack into")
      ->capture_default_str();
  cmd->add_flag("--quiet,-q", o->quiet, "no progress on stderr");
  set_action(cmd, global, [&global, o](Client& c) -> Status {
    if (o->skip_digest_for_named && !o->digests)
      return invalid_argument("--skip-digest-for-named needs --digests");
    return import_images(c, *o, global.format == "json");
  });
}

}  // namespace berth::cli
