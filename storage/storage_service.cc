#include "storage/storage_service.h"

#include "common/crc32c.h"
#include "proto/storage.pb.h"
#include "storage/uring_reader.h"

namespace shoal::storage {

StorageService::StorageService(std::map<uint32_t, ChunkStore*> targets, std::vector<loop::EventLoop*> loops,
                               Options options)
    : targets_(std::move(targets)), options_(options),
      pool_(std::make_unique<ThreadPool>(std::max(1, options.worker_threads))) {
  for (loop::EventLoop* l : loops) engines_[l] = std::make_unique<LoopReadEngine>(l);
}

StorageService::~StorageService() { pool_.reset(); }

ReadEngine* StorageService::EngineFor(loop::EventLoop* loop) const {
  auto it = engines_.find(loop);
  return it == engines_.end() ? nullptr : it->second.get();
}

ChunkStore* StorageService::Find(uint32_t target_id) const {
  auto it = targets_.find(target_id);
  return it == targets_.end() ? nullptr : it->second;
}

proto::NodeStats StorageService::Stats() const {
  proto::NodeStats s;
  for (const auto& [id, store] : targets_) {
    const StoreStats& t = store->stats();
    s.set_reads(s.reads() + t.reads);
    s.set_read_bytes(s.read_bytes() + t.read_bytes);
    s.set_writes(s.writes() + t.writes);
    s.set_write_bytes(s.write_bytes() + t.write_bytes);
    s.set_checksum_errors(s.checksum_errors() + t.checksum_errors);
    s.set_io_errors(s.io_errors() + t.io_errors);
  }
  return s;
}

std::string StorageService::RenderMetrics() const {
  std::string out;
  struct Counter {
    const char* name;
    const char* help;
    std::atomic<uint64_t> StoreStats::*field;
  };
  const Counter counters[] = {
      {"shoal_storage_reads_total", "chunk reads served", &StoreStats::reads},
      {"shoal_storage_read_bytes_total", "bytes read", &StoreStats::read_bytes},
      {"shoal_storage_writes_total", "chunk writes committed", &StoreStats::writes},
      {"shoal_storage_write_bytes_total", "bytes written", &StoreStats::write_bytes},
      {"shoal_storage_checksum_errors_total", "blocks that failed their CRC32C", &StoreStats::checksum_errors},
      {"shoal_storage_io_errors_total", "disk I/O errors", &StoreStats::io_errors},
  };
  for (const auto& c : counters) {
    bool first = true;
    for (const auto& [id, store] : targets_) {
      RenderMetric(&out, c.name, "counter", first ? c.help : "", (store->stats().*c.field).load(),
                   "target=\"" + std::to_string(id) + "\"");
      first = false;
    }
  }
  RenderMetric(&out, "shoal_storage_writes_superseded_total", "counter",
               "write attempts refused because a newer write of their lane had landed",
               static_cast<double>(ledger_.superseded()));
  RenderMetric(&out, "shoal_storage_reads_in_flight", "gauge", "batched read requests being served",
               static_cast<double>(reads_in_flight_.load()));
  read_latency_.Render(&out, "shoal_storage_read_seconds", "batched read latency, arrival to reply");
  return out;
}

namespace {
// One STORAGE_READ in progress: its ops and their buffers live until the reply
// has been sent (the payload goes out straight from them).
struct ReadCall {
  std::unique_ptr<rpc::LoopCall> call;
  std::vector<ReadOp> ops;
  std::atomic<int> groups{0};  // stores still reading
  std::chrono::steady_clock::time_point start;
  std::atomic<int64_t>* in_flight;
  Histogram* latency;

  // Replies and hands itself to the reply's release.
  static void Respond(ReadCall* rc) {
    proto::ReadRsp rsp;
    std::vector<iovec> payload;
    payload.reserve(rc->ops.size());
    for (auto& op : rc->ops) {
      auto* r = rsp.add_results();
      r->set_code(op.status.code());
      if (op.status.ok()) {
        payload.push_back({const_cast<uint8_t*>(op.data), op.length});
      } else {
        r->set_message(op.status.message());
      }
    }
    rc->latency->Observe(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - rc->start).count());
    rc->in_flight->fetch_sub(1, std::memory_order_relaxed);
    rpc::LoopCall* call = rc->call.get();
    call->Reply(rsp, payload.data(), static_cast<int>(payload.size()), [rc] { delete rc; });
  }
};
}  // namespace

void StorageService::HandleRead(std::unique_ptr<rpc::LoopCall> call) {
  proto::ReadReq req;
  if (!call->Parse(&req)) return;
  if (static_cast<uint64_t>(req.items_size()) > options_.max_read_items)
    return call->ReplyError(Error(proto::TOO_LARGE, "read of " + std::to_string(req.items_size()) +
                                                        " items exceeds " + std::to_string(options_.max_read_items)));
  uint64_t total = 0;
  for (const auto& item : req.items()) total += item.length();
  if (total > options_.max_read_bytes)
    return call->ReplyError(Error(proto::TOO_LARGE, "read of " + std::to_string(total) + " bytes exceeds " +
                                                        std::to_string(options_.max_read_bytes)));
  ReadEngine* engine = EngineFor(call->loop());
  auto* rc = new ReadCall;
  rc->call = std::move(call);
  rc->start = std::chrono::steady_clock::now();
  rc->in_flight = &reads_in_flight_;
  rc->latency = &read_latency_;
  reads_in_flight_.fetch_add(1, std::memory_order_relaxed);
  rc->ops.resize(req.items_size());
  std::map<ChunkStore*, std::vector<ReadOp*>> groups;
  for (int i = 0; i < req.items_size(); ++i) {
    const auto& item = req.items(i);
    ReadOp& op = rc->ops[i];
    op.inode = item.chunk().inode();
    op.index = item.chunk().index();
    op.offset = item.offset();
    op.length = item.length();
    op.chunk_size = item.chunk_size();
    ChunkStore* store = Find(item.chunk().target_id());
    if (!store) {
      op.status = Error(proto::NOT_FOUND, "no target " + std::to_string(item.chunk().target_id()) + " here");
      continue;
    }
    groups[store].push_back(&op);
  }
  if (groups.empty()) return ReadCall::Respond(rc);
  // One more than the stores, released below: a store that completes inline
  // cannot reply before every store has started.
  rc->groups = static_cast<int>(groups.size()) + 1;
  for (auto& [store, ops] : groups)
    store->ReadOn(std::move(ops), [rc] {
      if (--rc->groups == 0) ReadCall::Respond(rc);
    }, engine);
  if (--rc->groups == 0) ReadCall::Respond(rc);
}

void StorageService::OnPool(std::unique_ptr<rpc::LoopCall> call, void (*fn)(StorageService*, rpc::LoopCall&)) {
  // ThreadPool takes copyable closures: the call travels by pointer.
  rpc::LoopCall* raw = call.release();
  pool_->Submit([this, raw, fn] {
    std::unique_ptr<rpc::LoopCall> c(raw);
    fn(this, *c);
  });
}

void StorageService::HandleWrite(rpc::LoopCall& call) {
  proto::WriteReq req;
  if (!call.Parse(&req)) return;
  if (call.payload_len() != req.length())
    return call.ReplyError(Error(proto::INVALID_ARGUMENT, "payload length does not match the request"));
  if (Crc32c(call.payload(), call.payload_len()) != req.payload_crc32c())
    return call.ReplyError(Error(proto::CHECKSUM_MISMATCH, "write payload damaged in transit"));
  ChunkStore* store = Find(req.chunk().target_id());
  if (!store) return call.ReplyError(Error(proto::NOT_FOUND, "no target " + std::to_string(req.chunk().target_id())));
  ChunkWrite w;
  w.inode = req.chunk().inode();
  w.index = req.chunk().index();
  w.offset = req.offset();
  w.data = call.payload();
  w.length = req.length();
  w.chunk_size = req.chunk_size();
  w.version = req.version();
  Result<uint64_t> version = ledger_.Apply(WriteLedger::Writer{req.client_id(), req.lane(), req.seq()},
                                           [&] { return store->Write(w); });
  if (!version.ok()) return call.ReplyError(version.status());
  proto::WriteRsp rsp;
  rsp.set_version(*version);
  call.Reply(rsp);
}

void StorageService::Register(rpc::LoopServer& server) {
  server.Register(proto::STORAGE_READ, [this](auto call) { HandleRead(std::move(call)); });
  server.Register(proto::STORAGE_WRITE, [this](auto call) {
    OnPool(std::move(call), [](StorageService* s, rpc::LoopCall& c) { s->HandleWrite(c); });
  });
  server.Register(proto::STORAGE_TRUNCATE, [this](auto call) {
    OnPool(std::move(call), [](StorageService* s, rpc::LoopCall& c) {
      proto::TruncateReq req;
      if (!c.Parse(&req)) return;
      ChunkStore* store = s->Find(req.target_id());
      if (!store) return c.ReplyError(Error(proto::NOT_FOUND, "no target " + std::to_string(req.target_id())));
      Status st = store->Truncate(req.inode(), req.length(), req.chunk_size());
      if (!st.ok()) return c.ReplyError(st);
      c.Reply(proto::Empty());
    });
  });
  server.Register(proto::STORAGE_REMOVE, [this](auto call) {
    OnPool(std::move(call), [](StorageService* s, rpc::LoopCall& c) {
      proto::RemoveReq req;
      if (!c.Parse(&req)) return;
      ChunkStore* store = s->Find(req.target_id());
      if (!store) return c.ReplyError(Error(proto::NOT_FOUND, "no target " + std::to_string(req.target_id())));
      Status st = store->Remove(req.inode());
      if (!st.ok()) return c.ReplyError(st);
      c.Reply(proto::Empty());
    });
  });
  server.Register(proto::STORAGE_STATS, [this](auto call) { call->Reply(Stats()); });
}

}  // namespace shoal::storage
