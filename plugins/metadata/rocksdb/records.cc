#include "plugins/metadata/rocksdb/records.h"

#include <nlohmann/json.hpp>

namespace berth::plugins::metadata {
namespace {

using nlohmann::json;

template <typename F>
auto parse(std::string_view v, std::string_view kind, F&& f) -> decltype(f(json())) {
  try {
    return f(json::parse(v));
  } catch (const std::exception& e) {
    return Status(Code::kDataLoss, fmt::format("corrupt {} record: {}", kind, e.what()));
  }
}

Labels labels_of(const json& j) {
  if (!j.contains("labels")) return {};
  return j["labels"].get<Labels>();
}

}  // namespace

std::string encode(const ContentRecord& r) {
  return json{
      {"size", r.size}, {"created", r.created}, {"updated", r.updated}, {"labels", r.labels}}
      .dump();
}

std::string encode(const IngestRecord& r) {
  return json{{"bref", r.backend_ref}, {"expires", r.expires}, {"expected", r.expected}}.dump();
}

std::string encode(const LeaseRecord& r) {
  return json{{"created", r.created}, {"labels", r.labels}}.dump();
}

Result<ContentRecord> decode_content(std::string_view v) {
  return parse(v, "content", [](const json& j) -> Result<ContentRecord> {
    ContentRecord r;
    r.size = j.value("size", std::int64_t{0});
    r.created = j.value("created", std::int64_t{0});
    r.updated = j.value("updated", std::int64_t{0});
    r.labels = labels_of(j);
    return r;
  });
}

Result<IngestRecord> decode_ingest(std::string_view v) {
  return parse(v, "ingest", [](const json& j) -> Result<IngestRecord> {
    IngestRecord r;
    r.backend_ref = j.value("bref", std::string());
    r.expires = j.value("expires", std::int64_t{0});
    r.expected = j.value("expected", std::string());
    return r;
  });
}

Result<LeaseRecord> decode_lease(std::string_view v) {
  return parse(v, "lease", [](const json& j) -> Result<LeaseRecord> {
    LeaseRecord r;
    r.created = j.value("created", std::int64_t{0});
    r.labels = labels_of(j);
    return r;
  });
}

Result<ImageRecord> decode_image(std::string_view v) {
  return parse(v, "image", [](const json& j) -> Result<ImageRecord> {
    ImageRecord r;
    if (j.contains("target")) r.target_digest = j["target"].value("digest", std::string());
    r.labels = labels_of(j);
    return r;
  });
}

Result<ContainerRecord> decode_container(std::string_view v) {
  return parse(v, "container", [](const json& j) -> Result<ContainerRecord> {
    ContainerRecord r;
    r.snapshotter = j.value("snapshotter", std::string());
    r.snapshot_key = j.value("snapshot_key", std::string());
    r.labels = labels_of(j);
    return r;
  });
}

}  // namespace berth::plugins::metadata
