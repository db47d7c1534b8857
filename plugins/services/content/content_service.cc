#include "plugins/services/content/content_service.h"

#include <vector>

#include "github.com/containerd/containerd/api/events/content.pb.h"

namespace berth::plugins::services {
namespace {

namespace pb = ::containerd::services::content::v1;

constexpr std::size_t kReadChunk = 1 << 20;  // containerd streams 1 MiB messages
constexpr int kListBatch = 100;

void to_proto(const content::Info& in, pb::Info* out) {
  out->set_digest(in.digest);
  out->set_size(in.size);
  berth::to_proto(in.created_at, out->mutable_created_at());
  berth::to_proto(in.updated_at, out->mutable_updated_at());
  for (const auto& [k, v] : in.labels) (*out->mutable_labels())[k] = v;
}

void to_proto(const content::IngestStatus& in, pb::Status* out) {
  berth::to_proto(in.started_at, out->mutable_started_at());
  berth::to_proto(in.updated_at, out->mutable_updated_at());
  out->set_ref(in.ref);
  out->set_offset(in.offset);
  out->set_total(in.total);
  out->set_expected(in.expected);
}


}  // namespace

ContentService::ContentService(std::shared_ptr<metadata::MetadataStore> store,
                               std::shared_ptr<events::Exchange> exchange)
    : store_(std::move(store)), exchange_(std::move(exchange)) {}

grpc::Status ContentService::Info(grpc::ServerContext* ctx, const pb::InfoRequest* req,
                                  pb::InfoResponse* out) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    auto info = store_->content()->info(rc, req->digest());
    if (!info.ok()) return info.status();
    to_proto(*info, out->mutable_info());
    return berth::Status();
  });
}

grpc::Status ContentService::Update(grpc::ServerContext* ctx, const pb::UpdateRequest* req,
                                    pb::UpdateResponse* out) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    content::Info in;
    in.digest = req->info().digest();
    for (const auto& [k, v] : req->info().labels()) in.labels[k] = v;
    std::vector<std::string> paths(req->update_mask().paths().begin(),
                                   req->update_mask().paths().end());
    auto info = store_->content()->update(rc, in, paths);
    if (!info.ok()) return info.status();
    to_proto(*info, out->mutable_info());
    return berth::Status();
  });
}

grpc::Status ContentService::List(grpc::ServerContext* ctx, const pb::ListContentRequest* req,
                                  grpc::ServerWriter<pb::ListContentResponse>* writer) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    pb::ListContentResponse batch;
    bool gone = false;
    berth::Status st =
        store_->content()->walk(rc, {req->filters().begin(), req->filters().end()},
                                [&](const content::Info& info) -> berth::Status {
                                  to_proto(info, batch.add_info());
                                  if (batch.info_size() >= kListBatch) {
                                    if (!writer->Write(batch)) {
                                      gone = true;
                                      return berth::Status(Code::kCancelled, "client went away");
                                    }
                                    batch.Clear();
                                  }
                                  return berth::Status();
                                });
    if (gone) return berth::Status(Code::kCancelled, "client went away");
    if (!st.ok()) return st;
    if (batch.info_size() > 0) writer->Write(batch);
    return berth::Status();
  });
}

grpc::Status ContentService::Delete(grpc::ServerContext* ctx, const pb::DeleteContentRequest* req,
                                    google::protobuf::Empty*) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    if (berth::Status st = store_->content()->remove(rc, req->digest()); !st.ok()) return st;
    if (exchange_) {
      ::containerd::events::ContentDelete e;
      e.set_digest(req->digest());
      exchange_
          ->publish(rc.ns, "/content/delete", "containerd.events.ContentDelete",
                    e.SerializeAsString())
          .ignore();
    }
    return berth::Status();
  });
}

grpc::Status ContentService::Read(grpc::ServerContext* ctx, const pb::ReadContentRequest* req,
                                  grpc::ServerWriter<pb::ReadContentResponse>* writer) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    auto reader = store_->content()->reader(rc, req->digest());
    if (!reader.ok()) return reader.status();
    std::int64_t size = (*reader)->size();
    std::int64_t offset = req->offset();
    if (offset < 0 || offset > size) {
      return berth::Status(
          Code::kOutOfRange,
          fmt::format("read offset {} is outside {} (size {})", offset, req->digest(), size));
    }
    std::int64_t end = size;
    if (req->size() > 0 && offset + req->size() < size) end = offset + req->size();
    // One buffer reused for every message: memory stays at one chunk whatever the blob size.
    pb::ReadContentResponse msg;
    std::string* data = msg.mutable_data();
    while (offset < end) {
      if (ctx->IsCancelled()) return berth::Status(Code::kCancelled, "client went away");
      std::size_t want = static_cast<std::size_t>(std::min<std::int64_t>(kReadChunk, end - offset));
      data->resize(want);
      auto n = (*reader)->read_at(data->data(), want, offset);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      data->resize(*n);
      msg.set_offset(offset);
      if (!writer->Write(msg)) return berth::Status(Code::kCancelled, "client went away");
      offset += static_cast<std::int64_t>(*n);
    }
    return berth::Status();
  });
}

grpc::Status ContentService::Status(grpc::ServerContext* ctx, const pb::StatusRequest* req,
                                    pb::StatusResponse* out) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    auto st = store_->content()->status(rc, req->ref());
    if (!st.ok()) return st.status();
    to_proto(*st, out->mutable_status());
    return berth::Status();
  });
}

grpc::Status ContentService::ListStatuses(grpc::ServerContext* ctx,
                                          const pb::ListStatusesRequest* req,
                                          pb::ListStatusesResponse* out) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    auto all = store_->content()->list_statuses(rc, {req->filters().begin(), req->filters().end()});
    if (!all.ok()) return all.status();
    for (const auto& s : *all) to_proto(s, out->add_statuses());
    return berth::Status();
  });
}

grpc::Status ContentService::Abort(grpc::ServerContext* ctx, const pb::AbortRequest* req,
                                   google::protobuf::Empty*) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    return store_->content()->abort(rc, req->ref());
  });
}

// The Write stream, as containerd speaks it: the first message names the ref; STAT reports;
// WRITE appends at exactly the current offset (offset 0 on a non-empty ingest starts over);
// COMMIT may carry the last bytes and commits with total/expected/labels.
grpc::Status ContentService::Write(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<pb::WriteContentResponse, pb::WriteContentRequest>* stream) {
  return serve(ctx, [&](const RequestContext& rc) -> berth::Status {
    pb::WriteContentRequest req;
    if (!stream->Read(&req)) return berth::Status();
    if (req.ref().empty()) {
      return invalid_argument("first message of a write must carry a ref");
    }
    std::string expected = req.expected();
    std::int64_t total = req.total();
    auto w = store_->content()->writer(rc, {.ref = req.ref(), .total = total, .expected = expected});
    if (!w.ok()) return w.status();
    auto& writer = *w;
    pb::WriteContentResponse msg;
    do {
      if (!req.ref().empty() && req.ref() != writer->status().ref) {
        return invalid_argument("ref \"{}\" does not match the stream's ref \"{}\"", req.ref(),
                                writer->status().ref);
      }
      if (!req.expected().empty()) expected = req.expected();
      if (req.total() > 0) total = req.total();
      msg.Clear();
      msg.set_action(req.action());
      auto ws = writer->status();
      berth::to_proto(ws.started_at, msg.mutable_started_at());
      berth::to_proto(ws.updated_at, msg.mutable_updated_at());
      msg.set_offset(ws.offset);
      msg.set_total(total > 0 ? total : ws.total);
      switch (req.action()) {
        case pb::STAT: msg.set_digest(writer->digest()); break;
        case pb::WRITE:
        case pb::COMMIT: {
          if (req.offset() > 0 && req.offset() != ws.offset) {
            return berth::Status(
                Code::kOutOfRange,
                fmt::format("write of \"{}\" at offset {} must happen at the current offset {}",
                            ws.ref, req.offset(), ws.offset));
          }
          if (req.offset() == 0 && ws.offset > 0) {
            if (berth::Status st = writer->truncate(0); !st.ok()) return st;
            msg.set_offset(0);
          }
          if (!req.data().empty()) {
            if (berth::Status st = writer->write(req.data()); !st.ok()) return st;
            msg.set_offset(writer->status().offset);
          }
          if (req.action() == pb::COMMIT) {
            std::map<std::string, std::string> labels(req.labels().begin(), req.labels().end());
            berth::Status st = writer->commit(total, expected, labels);
            if (!st.ok()) return st;
            msg.set_digest(writer->digest());
          }
          break;
        }
        default:
          return invalid_argument("unknown write action {}", static_cast<int>(req.action()));
      }
      if (!stream->Write(msg)) return berth::Status(Code::kCancelled, "client went away");
    } while (stream->Read(&req));
    return berth::Status();
  });
}

}  // namespace berth::plugins::services
