// berth images ls|rm|tag|label|inspect (pull and push: transfer.cc)
#include <berth/convert/descriptor.h>
#include <berth/grpc.h>

#include <iostream>

#include "cmd/berth/commands.h"
#include "cmd/berth/image_client.h"
#include "cmd/berth/output.h"
#include "core/time.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"

namespace berth::cli {
namespace {

namespace pb = ::containerd::services::images::v1;

nlohmann::json image_json(const pb::Image& i) {
  return {{"name", i.name()},
          {"target",
           {{"mediaType", i.target().media_type()},
            {"digest", i.target().digest()},
            {"size", i.target().size()},
            {"annotations", std::map<std::string, std::string>(i.target().annotations().begin(),
                                                               i.target().annotations().end())}}},
          {"labels", std::map<std::string, std::string>(i.labels().begin(), i.labels().end())},
          {"created_at", core::format_rfc3339(from_proto(i.created_at()))},
          {"updated_at", core::format_rfc3339(from_proto(i.updated_at()))}};
}

Result<pb::Image> get_image(Client& c, const std::string& name) {
  pb::GetImageRequest req;
  req.set_name(name);
  pb::GetImageResponse resp;
  auto ctx = c.context();
  BERTH_RETURN_IF_ERROR(
      c.check(pb::Images::NewStub(c.channel())->Get(ctx.get(), req, &resp), "get image"));
  return resp.image();
}

// The size an image takes: its manifest, config and layers (the target's own size for an index
// or when the manifest cannot be read).
std::int64_t image_size(Client& c, const pb::Image& i) {
  const auto& t = i.target();
  if (t.media_type().find("manifest") == std::string::npos || t.size() > (4 << 20)) return t.size();
  auto body = read_blob(c, t.digest(), 4 << 20);
  if (!body.ok()) return t.size();
  auto j = nlohmann::json::parse(*body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return t.size();
  std::int64_t total = t.size();
  if (j.contains("config") && j["config"].is_object())
    total += j["config"].value("size", std::int64_t{0});
  if (j.contains("layers") && j["layers"].is_array()) {
    for (const auto& l : j["layers"]) {
      if (l.is_object()) total += l.value("size", std::int64_t{0});
    }
  }
  return total;
}

std::string short_type(const std::string& media_type) {
  if (media_type.find("index") != std::string::npos || media_type.find("list") != std::string::npos)
    return "index";
  if (media_type.find("manifest") != std::string::npos) return "manifest";
  return media_type;
}

// Every verb's options, held by the callbacks.
struct ImagesOptions {
  bool quiet = false;
  std::vector<std::string> filters;
  std::vector<std::string> rm_names;
  bool sync = false;
  std::string source;
  std::vector<std::string> targets;
  bool force = false;
  std::string label_name;
  std::vector<std::string> label_args;
  std::string inspect_name;
};

void add_images_ls(CLI::App* images, const GlobalOptions& global,
                   const std::shared_ptr<ImagesOptions>& o) {
  auto* ls = images->add_subcommand("ls", "list images [FILTER...]")->alias("list");
  ls->add_flag("--quiet,-q", o->quiet, "print only names");
  ls->add_option("filters", o->filters, "filters, e.g. name~=busybox or labels.team==x");
  set_action(ls, global, [&global, o](Client& c) -> Status {
    pb::ListImagesRequest req;
    for (const auto& f : o->filters) req.add_filters(f);
    pb::ListImagesResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Images::NewStub(c.channel())->List(ctx.get(), req, &resp), "list images"));
    if (global.format == "json") {
      auto arr = nlohmann::json::array();
      for (const auto& i : resp.images()) arr.push_back(image_json(i));
      print_json(std::cout, arr);
    } else if (o->quiet) {
      for (const auto& i : resp.images()) std::cout << i.name() << "\n";
    } else {
      Table t({"NAME", "TYPE", "DIGEST", "SIZE", "CREATED", "LABELS"});
      for (const auto& i : resp.images()) {
        t.add({i.name(), short_type(i.target().media_type()), i.target().digest(),
               human_size(image_size(c, i)), human_age(from_proto(i.created_at())) + " ago",
               join_labels({i.labels().begin(), i.labels().end()})});
      }
      t.print(std::cout);
    }
    return Status();
  });
}

void add_images_rm(CLI::App* images, const GlobalOptions& global,
                   const std::shared_ptr<ImagesOptions>& o) {
  auto* rm =
      images->add_subcommand("rm", "remove images: NAME...")->alias("remove")->alias("delete");
  rm->add_option("names", o->rm_names, "image names")->required();
  rm->add_flag("--sync", o->sync, "wait for the garbage collection that frees their content");
  set_action(rm, global, [o](Client& c) -> Status {
    return for_each_item(o->rm_names, "images", true, [&](const std::string& n) {
      pb::DeleteImageRequest req;
      req.set_name(n);
      req.set_sync(o->sync);
      google::protobuf::Empty e;
      auto ctx = c.context();
      return c.check(pb::Images::NewStub(c.channel())->Delete(ctx.get(), req, &e), "delete image");
    });
  });
}

void add_images_tag(CLI::App* images, const GlobalOptions& global,
                    const std::shared_ptr<ImagesOptions>& o) {
  auto* tag = images->add_subcommand("tag", "give an image more names: SOURCE TARGET...");
  tag->add_option("source", o->source, "existing image")->required();
  tag->add_option("targets", o->targets, "new names")->required();
  tag->add_flag("--force", o->force, "replace a target that exists");
  set_action(tag, global, [o](Client& c) -> Status {
    BERTH_TRY(auto img, get_image(c, o->source));
    auto stub = pb::Images::NewStub(c.channel());
    for (const auto& t : o->targets) {
      pb::CreateImageRequest req;
      *req.mutable_image() = img;
      req.mutable_image()->set_name(t);
      req.mutable_image()->clear_created_at();
      req.mutable_image()->clear_updated_at();
      pb::CreateImageResponse resp;
      auto ctx = c.context();
      Status st = c.check(stub->Create(ctx.get(), req, &resp), "tag image");
      if (st.code() == Code::kAlreadyExists && o->force) {
        pb::UpdateImageRequest u;
        *u.mutable_image() = req.image();
        u.mutable_update_mask()->add_paths("target");
        pb::UpdateImageResponse ur;
        auto uctx = c.context();
        st = c.check(stub->Update(uctx.get(), u, &ur), "tag image");
      }
      BERTH_RETURN_IF_ERROR(st);
      std::cout << t << "\n";
    }
    return Status();
  });
}

void add_images_label(CLI::App* images, const GlobalOptions& global,
                      const std::shared_ptr<ImagesOptions>& o) {
  auto* label =
      images->add_subcommand("label", "set or clear labels: NAME KEY=VALUE... (KEY= clears)");
  label->add_option("name", o->label_name, "image name")->required();
  label->add_option("labels", o->label_args, "KEY=VALUE")->required();
  set_action(label, global, [o](Client& c) -> Status {
    pb::UpdateImageRequest req;
    req.mutable_image()->set_name(o->label_name);
    for (const auto& [k, v] : parse_labels(o->label_args)) {
      if (!v.empty()) (*req.mutable_image()->mutable_labels())[k] = v;
      req.mutable_update_mask()->add_paths("labels." + k);
    }
    pb::UpdateImageResponse resp;
    auto ctx = c.context();
    BERTH_RETURN_IF_ERROR(
        c.check(pb::Images::NewStub(c.channel())->Update(ctx.get(), req, &resp), "label image"));
    std::cout << join_labels({resp.image().labels().begin(), resp.image().labels().end()}) << "\n";
    return Status();
  });
}

void add_images_inspect(CLI::App* images, const GlobalOptions& global,
                        const std::shared_ptr<ImagesOptions>& o) {
  auto* inspect = images->add_subcommand("inspect", "show an image record as JSON: NAME");
  inspect->add_option("name", o->inspect_name, "image name")->required();
  set_action(inspect, global, [o](Client& c) -> Status {
    BERTH_TRY(auto img, get_image(c, o->inspect_name));
    print_json(std::cout, image_json(img));
    return Status();
  });
}

}  // namespace

void add_images_command(CLI::App& app, const GlobalOptions& global) {
  auto* images = app.add_subcommand("images", "manage images");
  images->alias("image")->alias("i");
  images->require_subcommand(1);
  auto o = std::make_shared<ImagesOptions>();
  for (auto* add :
       {add_images_ls, add_images_rm, add_images_tag, add_images_label, add_images_inspect})
    add(images, global, o);
  // The verbs with files of their own.
  add_import_rootfs_command(*images, global);
  add_export_command(*images, global);
  add_import_command(*images, global);
  add_unpack_commands(*images, global);
  add_transfer_commands(*images, global);
}

}  // namespace berth::cli
