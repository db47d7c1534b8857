// berth images import|unpack|check|mount|unmount|export --platform, end to end: OCI layouts (tar,
// directory, stdin) and docker-archives made by skopeo or built here byte by byte, multi-platform
// indexes, hostile layers refused through the whole import path, and the unpacked tree of a
// multi-layer image with whiteouts compared entry by entry with what containerd itself unpacks
// from the same archive.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/fs.h"
#include "tests/e2e/harness.h"
#include "tests/support/oci_layout.h"
#include "tests/support/tar_builder.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::compress;
using test::Layer;
using test::Layout;
using test::make_layer;
using test::TarBuilder;
using ::testing::HasSubstr;

using test::write_file;

// Everything the comparison looks at, per path: type, mode, owner, size, content digest, link
// target, device numbers, link count, xattrs.
std::map<std::string, std::string> describe_tree(const std::string& root) {
  std::map<std::string, std::string> out;
  auto describe = [&](const std::string& path, const std::string& rel) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      out[rel] = "lstat failed";
      return;
    }
    std::string d = fmt::format("mode={:o} uid={} gid={}", st.st_mode, st.st_uid, st.st_gid);
    if (S_ISREG(st.st_mode)) {
      auto data = core::read_file(path);
      d += fmt::format(" size={} nlink={} sha={}", st.st_size, st.st_nlink,
                       data.ok() ? core::Sha256::digest_of(*data) : "unreadable");
    } else if (S_ISLNK(st.st_mode)) {
      d += " -> " + fs::read_symlink(path).string();
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      d += fmt::format(" dev={}:{}", major(st.st_rdev), minor(st.st_rdev));
    }
    char names[4096];
    ssize_t n = ::llistxattr(path.c_str(), names, sizeof names);
    std::vector<std::string> keys;
    for (ssize_t i = 0; i > -1 && i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1)
      keys.emplace_back(names + i);
    std::sort(keys.begin(), keys.end());
    for (const auto& k : keys) {
      char v[4096];
      ssize_t vn = ::lgetxattr(path.c_str(), k.c_str(), v, sizeof v);
      d += " xattr:" + k + "=" + std::string(v, vn > 0 ? static_cast<std::size_t>(vn) : 0);
    }
    out[rel] = d;
  };
  describe(root, ".");
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    describe(it->path().string(), fs::relative(it->path(), root).string());
  }
  return out;
}

// Three layers (gzip, plain, zstd) exercising every entry type, owners, modes, xattrs, hard
// links, whiteouts, opaque directories, and replacing a symlink by a directory.
std::vector<Layer> tricky_layers() {
  std::map<std::string, std::string> x = {{"user.note", "kept"}};
  Layer l0 = make_layer(TarBuilder()
                            .dir("a", 0755)
                            .file("a/keep", "keep me", 0640, 1000, x)
                            .file("a/gone", "gone soon")
                            .hardlink("a/keep-link", "a/keep")
                            .dir("b", 0711, 33)
                            .file("b/old1", "1")
                            .file("b/old2", "2")
                            .symlink("c", "a/keep")
                            .symlink("abs", "/etc/passwd")
                            .fifo("pipe")
                            .device("null", false, 1, 3)
                            .device("loop9", true, 7, 9, 0660)
                            .file("setuid", "s", 04755)
                            .dir("tree", 0755)
                            .dir("tree/sub", 0700, 5)
                            .file("tree/sub/f", "f")
                            .finish(),
                        "gzip");
  Layer l1 = make_layer(TarBuilder()
                            .file("a/.wh.gone", "")
                            .dir("b", 0750, 34)
                            .file("b/.wh..wh..opq", "")
                            .file("b/new", "new in b")
                            .file("a/keep", "rewritten", 0600, 2000)
                            .file(".wh.tree", "")
                            .finish());
  Layer l2 = make_layer(TarBuilder()
                            .file(".wh.c", "")
                            .dir("c", 0755)
                            .file("c/inside", "c is a dir now")
                            .dir("tree", 0701)
                            .file("tree/again", "fresh")
                            .file("pipe", "a file where a fifo was", 0644)
                            .finish(),
                        "zstd");
  return {l0, l1, l2};
}

class ImportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "unpacking needs root";
    d_ = Daemon::create();
    ASSERT_TRUE(d_);
    auto err = d_->start();
    ASSERT_FALSE(err.has_value()) << *err;
  }
  void TearDown() override {
    for (const auto& m : mounts_) ::umount2(m.c_str(), MNT_DETACH);
  }
  std::string mkdir(const std::string& name) {
    std::string p = d_->dir() + "/" + name;
    fs::create_directories(p);
    return p;
  }
  // berth images mount NAME DIR, remembered for cleanup.
  void mount(const std::string& image, const std::string& dir,
             std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"images", "mount"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(image);
    args.push_back(dir);
    mounts_.push_back(dir);
    auto r = d_->berth(args);
    ASSERT_EQ(r.exit_code, 0) << diag(r);
  }
  std::string file(const std::string& path) {
    auto r = core::read_file(path);
    return r.ok() ? *r : "<missing>";
  }
  std::unique_ptr<Daemon> d_;
  std::vector<std::string> mounts_;
};

TEST_F(ImportTest, UnpackedTreeIsIdenticalToContainerds) {
  std::string why;
  auto containerd = Containerd::start(&why);
  ASSERT_TRUE(containerd) << why;
  Layout layout;
  layout.name(layout.manifest("amd64", tricky_layers()), "example.com/tricky:1");
  std::string archive = d_->dir() + "/tricky.tar";
  write_file(archive, layout.tar());

  // Same archive, same snapshotter, each daemon mounting its own unpack read-only.
  for (std::string sn : {"overlayfs", "native"}) {
    SCOPED_TRACE(sn);
    auto imp = d_->berth({"--format", "json", "images", "import", "--platform", "linux/amd64",
                          "--snapshotter", sn, archive});
    ASSERT_EQ(imp.exit_code, 0) << diag(imp);
    auto imported = json::parse(imp.out);
    ASSERT_EQ(imported.size(), 1u) << imp.out;
    EXPECT_EQ(imported[0]["name"], "example.com/tricky:1");
    std::string chain = imported[0].value("chain_id", "");
    std::string ours = mkdir("ours-" + sn);
    mount("example.com/tricky:1", ours, {"--platform", "linux/amd64", "--snapshotter", sn});

    auto theirs_import = containerd->ctr(
        {"images", "import", "--platform", "linux/amd64", "--snapshotter", sn, archive});
    ASSERT_EQ(theirs_import.exit_code, 0) << diag(theirs_import);
    std::string theirs = mkdir("theirs-" + sn);
    mounts_.push_back(theirs);
    // ctr images mount only knows overlayfs (it reads --snapshotter as a global flag); the
    // native tree is mounted through ctr snapshots instead, by the same chain ID (prepare, which
    // labels it as a GC root, unlike view).
    auto view = containerd->ctr({"snapshots", "--snapshotter", sn, "prepare", theirs, chain});
    ASSERT_EQ(view.exit_code, 0) << diag(view);
    auto cmds = containerd->ctr({"snapshots", "--snapshotter", sn, "mounts", theirs, theirs});
    ASSERT_EQ(cmds.exit_code, 0) << diag(cmds);
    auto m = run({"sh", "-c", cmds.out});
    ASSERT_EQ(m.exit_code, 0) << cmds.out << diag(m);
    auto expected = describe_tree(theirs);
    ASSERT_GT(expected.size(), 10u);

    auto got = describe_tree(ours);
    for (const auto& [path, want] : expected) {
      auto it = got.find(path);
      if (it == got.end()) {
        ADD_FAILURE() << path << " missing (containerd has " << want << ")";
        continue;
      }
      EXPECT_EQ(it->second, want) << path;
    }
    for (const auto& [path, have] : got) {
      EXPECT_TRUE(expected.count(path)) << path << " is extra: " << have;
    }
    auto um = d_->berth({"images", "unmount", "--snapshotter", sn, ours});
    EXPECT_EQ(um.exit_code, 0) << diag(um);
    EXPECT_FALSE(::umount2(ours.c_str(), MNT_DETACH) == 0) << "still mounted after unmount";
    EXPECT_EQ(::umount2(theirs.c_str(), 0), 0);
    auto cu = containerd->ctr({"snapshots", "--snapshotter", sn, "rm", theirs});
    EXPECT_EQ(cu.exit_code, 0) << diag(cu);
  }
}

TEST_F(ImportTest, SkopeoOciArchiveDirectoryAndStdin) {
  std::string layout = d_->dir() + "/layout", hello = d_->dir() + "/hello";
  write_file(hello, "hello\n");
  for (const std::string& cmd :
       {"umoci init --layout " + layout + " && umoci new --image " + layout + ":latest",
        "umoci insert --image " + layout + ":latest /bin/busybox /bin/busybox",
        "umoci insert --image " + layout + ":latest " + hello + " /etc/hello",
        "skopeo copy oci:" + layout + ":latest oci-archive:" + d_->dir() +
            "/img.tar:docker.io/library/sk:1",
        "skopeo copy oci:" + layout + ":latest docker-archive:" + d_->dir() +
            "/docker.tar:busybox:v2"}) {
    auto r = run({"sh", "-c", cmd}, std::chrono::minutes(2));
    ASSERT_EQ(r.exit_code, 0) << cmd << "\n" << diag(r);
  }
  // A directory layout whose index names a bare tag gets ctr's "import-<date>" prefix; with
  // --no-unpack nothing reaches the snapshotter.
  auto dated = d_->berth({"images", "import", "--no-unpack", layout});
  ASSERT_EQ(dated.exit_code, 0) << diag(dated);
  EXPECT_THAT(dated.out, ::testing::StartsWith("import-"));
  auto packed = d_->berth({"--format", "json", "images", "check"});
  auto packed_json = json::parse(packed.out);
  ASSERT_EQ(packed_json.size(), 1u) << packed.out;
  EXPECT_TRUE(packed_json[0]["complete"].get<bool>());
  EXPECT_FALSE(packed_json[0]["unpacked"].get<bool>());
  // --base-name puts a repository in front of the tag.
  auto dir = d_->berth({"images", "import", "--base-name", "example.com/dir", layout});
  ASSERT_EQ(dir.exit_code, 0) << diag(dir);
  EXPECT_THAT(dir.out, HasSubstr("example.com/dir:latest sha256:"));
  // A tar from standard input.
  auto piped = d_->berth({"images", "import", "-"}, d_->dir() + "/img.tar");
  ASSERT_EQ(piped.exit_code, 0) << diag(piped);
  EXPECT_THAT(piped.out, HasSubstr("docker.io/library/sk:1"));
  // A docker-archive: RepoTags normalised.
  auto docker = d_->berth({"--format", "json", "images", "import", d_->dir() + "/docker.tar"});
  ASSERT_EQ(docker.exit_code, 0) << diag(docker);
  auto j = json::parse(docker.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["name"], "docker.io/library/busybox:v2");
  EXPECT_TRUE(j[0].contains("chain_id"));

  auto check = d_->berth({"--format", "json", "images", "check"});
  ASSERT_EQ(check.exit_code, 0) << diag(check);
  for (const auto& e : json::parse(check.out)) {
    EXPECT_TRUE(e["complete"].get<bool>()) << e.dump();
    EXPECT_TRUE(e["unpacked"].get<bool>()) << e.dump();  // by now: same layers as the others
  }
  for (std::string name :
       {"example.com/dir:latest", "docker.io/library/sk:1", "docker.io/library/busybox:v2"}) {
    std::string target = mkdir("m" + std::to_string(mounts_.size()));
    mount(name, target);
    EXPECT_EQ(file(target + "/etc/hello"), "hello\n") << name;
    EXPECT_TRUE(fs::exists(target + "/bin/busybox")) << name;
    // A read-only view by default.
    int fd = ::open((target + "/etc/new").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_LT(fd, 0) << name << " is writable";
    if (fd >= 0) ::close(fd);
    auto um = d_->berth({"images", "unmount", target});
    EXPECT_EQ(um.exit_code, 0) << diag(um);
  }
  // ctr sees and mounts what berth imported (same snapshots, same labels).
  std::string via_ctr = mkdir("via-ctr");
  mounts_.push_back(via_ctr);
  auto cm = d_->ctr({"images", "mount", "docker.io/library/busybox:v2", via_ctr});
  ASSERT_EQ(cm.exit_code, 0) << diag(cm);
  EXPECT_EQ(file(via_ctr + "/etc/hello"), "hello\n");
  auto cu = d_->berth({"images", "unmount", via_ctr});  // berth undoes ctr's mount
  EXPECT_EQ(cu.exit_code, 0) << diag(cu);
  auto leases = d_->berth({"leases", "ls"});
  EXPECT_THAT(leases.out, ::testing::Not(HasSubstr(via_ctr)));
}

TEST_F(ImportTest, PlatformSelectionAndExport) {
  Layout layout;
  json amd = layout.manifest("amd64", {make_layer(TarBuilder().file("arch", "amd64").finish())});
  json arm = layout.manifest("arm64", {make_layer(TarBuilder().file("arch", "arm64").finish())});
  layout.name(layout.index({amd, arm}), "example.com/multi:1");
  std::string archive = d_->dir() + "/multi.tar";
  write_file(archive, layout.tar());

  auto imp = d_->berth({"images", "import", "--platform", "linux/arm64", archive});
  ASSERT_EQ(imp.exit_code, 0) << diag(imp);
  std::string target = mkdir("arm");
  mount("example.com/multi:1", target, {"--platform", "linux/arm64"});
  EXPECT_EQ(file(target + "/arch"), "arm64");
  ASSERT_EQ(d_->berth({"images", "unmount", target}).exit_code, 0);

  // Only the arm64 manifest is a child of the index for the garbage collector.
  std::string index_digest = core::Sha256::digest_of(
      json{{"schemaVersion", 2},
           {"mediaType", "application/vnd.oci.image.index.v1+json"},
           {"manifests", {amd, arm}}}
          .dump());
  auto info = d_->berth({"--format", "json", "content", "ls"});
  ASSERT_EQ(info.exit_code, 0) << diag(info);
  bool seen = false;
  for (const auto& b : json::parse(info.out)) {
    if (b["digest"] != index_digest) continue;
    seen = true;
    EXPECT_EQ(b["labels"].value("containerd.io/gc.ref.content.m.0", ""), arm["digest"]);
    EXPECT_FALSE(b["labels"].contains("containerd.io/gc.ref.content.m.1")) << b.dump();
  }
  EXPECT_TRUE(seen);

  auto all = d_->berth({"images", "import", "--all-platforms", "--platform", "linux/amd64", archive});
  ASSERT_EQ(all.exit_code, 0) << diag(all);
  auto check = d_->berth({"images", "check", "--platform", "linux/amd64"});
  EXPECT_EQ(check.exit_code, 0) << diag(check);
  EXPECT_THAT(check.out, HasSubstr("linux/amd64"));

  // A platform the index lacks: a clear error naming what exists.
  auto none = d_->berth({"images", "unpack", "--platform", "linux/s390x", "example.com/multi:1"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.err, HasSubstr("linux/s390x"));
  EXPECT_THAT(none.err, HasSubstr("linux/arm64"));

  // export --platform replaces the index by that platform's manifest.
  std::string out = d_->dir() + "/arm.tar";
  auto ex = d_->berth({"images", "export", "--platform", "linux/arm64", out, "example.com/multi:1"});
  ASSERT_EQ(ex.exit_code, 0) << diag(ex);
  auto back = d_->berth({"--format", "json", "images", "import", "--no-unpack", "--base-name",
                         "example.com/multi", out});
  ASSERT_EQ(back.exit_code, 0) << diag(back);
  auto list = json::parse(back.out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["digest"], arm["digest"]);
}

TEST_F(ImportTest, HostileOrBrokenArchivesAreRefusedAndLeaveNothing) {
  std::string outside = d_->dir() + "/outside";
  fs::create_directories(outside);
  std::string big(1 << 20, 'z');
  std::string gz = compress(TarBuilder().file("big", big).file("b", "b").finish(), "gzip");
  Layer truncated{gz.substr(0, gz.size() / 2), "application/vnd.oci.image.layer.v1.tar+gzip",
                  core::Sha256::digest_of(TarBuilder().file("big", big).file("b", "b").finish())};
  struct Case {
    std::string name;
    std::vector<Layer> layers;
    std::string error;
    std::vector<std::string> diff_ids = {};
  };
  std::vector<Case> cases = {
      {"dotdot", {make_layer(TarBuilder().file("../../../../outside/escaped", "x").finish())},
       "escapes the root"},
      {"hardlink", {make_layer(TarBuilder().hardlink("shadow", "/etc/shadow").finish())},
       "not in the layer"},
      {"whiteout-dotdot", {make_layer(TarBuilder().file("x/.wh...", "").finish())}, "whiteout"},
      {"huge-name", {make_layer(TarBuilder().file(std::string(5000, 'n'), "x").finish())},
       "limit"},
      {"truncated-gzip", {truncated}, "layer"},
      {"wrong-diffid",
       {make_layer(TarBuilder().file("f", "f").finish())},
       "wrong diffID",
       {core::Sha256::digest_of("something else")}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Layout layout;
    std::vector<Layer> layers = {make_layer(TarBuilder().file("base", "fine").finish())};
    layers.insert(layers.end(), c.layers.begin(), c.layers.end());
    std::vector<std::string> diff_ids;
    if (!c.diff_ids.empty()) diff_ids = {layers[0].diff_id, c.diff_ids[0]};
    layout.name(layout.manifest("amd64", layers, diff_ids), "example.com/bad:" + c.name);
    std::string archive = d_->dir() + "/" + c.name + ".tar";
    write_file(archive, layout.tar());
    auto r = d_->berth({"images", "import", "--platform", "linux/amd64", archive});
    EXPECT_NE(r.exit_code, 0) << diag(r);
    EXPECT_THAT(r.err, HasSubstr(c.error)) << diag(r);
    std::size_t errors = 0;
    for (std::size_t at = r.err.find("berth: "); at != std::string::npos;
         at = r.err.find("berth: ", at + 1)) {
      ++errors;
      EXPECT_EQ(r.err.find('\n', at), r.err.size() - 1) << "one-line error, last: " << r.err;
    }
    EXPECT_EQ(errors, 1u) << r.err;
    // No image record, and only the good base layer's snapshot committed.
    auto ls = d_->berth({"images", "ls"});
    EXPECT_THAT(ls.out, ::testing::Not(HasSubstr("example.com/bad:" + c.name)));
  }
  auto snaps = d_->berth({"--format", "json", "snapshots", "ls"});
  ASSERT_EQ(snaps.exit_code, 0) << diag(snaps);
  for (const auto& s : json::parse(snaps.out)) {
    EXPECT_EQ(s["kind"], "Committed") << s.dump();  // no active extract-* leftovers
    EXPECT_EQ(s["parent"], "") << s.dump();         // only the shared base layer
  }
  EXPECT_TRUE(fs::is_empty(outside));
  EXPECT_FALSE(fs::exists(d_->root() + "/shadow"));

  // Inputs that are not image archives.
  std::string junk = d_->dir() + "/junk.tar";
  write_file(junk, std::string(3000, '\x42'));
  auto j = d_->berth({"images", "import", junk});
  EXPECT_NE(j.exit_code, 0);
  EXPECT_THAT(j.err, HasSubstr("junk.tar"));
  std::string plain = d_->dir() + "/plain.tar";
  write_file(plain, TarBuilder().file("hello", "x").finish());
  auto p = d_->berth({"images", "import", plain});
  EXPECT_NE(p.exit_code, 0);
  EXPECT_THAT(p.err, HasSubstr("neither an OCI image layout"));
  std::string lying = d_->dir() + "/lying.tar";
  write_file(lying, TarBuilder()
                        .file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
                        .file("index.json", R"({"schemaVersion":2,"manifests":[]})")
                        .file("blobs/sha256/" + std::string(64, 'a'), "not that digest")
                        .finish());
  auto l = d_->berth({"images", "import", lying});
  EXPECT_NE(l.exit_code, 0);
  EXPECT_THAT(l.err, HasSubstr("blobs/sha256/aaaa"));
}

}  // namespace
}  // namespace berth::e2e
