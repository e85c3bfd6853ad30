#include "storage/storage_service.h"

#include <algorithm>
#include <chrono>

#include "common/crc32c.h"
#include "common/log.h"
#include "proto/read_records.h"
#include "proto/storage.pb.h"
#include "storage/uring_reader.h"

namespace shoal::storage {

StorageService::StorageService(std::map<uint32_t, ChunkStore*> targets, std::vector<loop::EventLoop*> loops,
                               Options options)
    : targets_(std::move(targets)), options_(options), loops_(loops),
      openers_(std::make_unique<ThreadPool>(std::max(1, options.open_threads))),
      pool_(std::make_unique<ThreadPool>(std::max(1, options.worker_threads))) {
  LoopReadEngine::Options eo;
  eo.slab_slots = options.read_slab_slots;
  eo.large_slots = options.read_slab_large_slots;
  eo.helpers = openers_.get();
  for (loop::EventLoop* l : loops) engines_[l] = std::make_unique<LoopReadEngine>(l, eo);
}

StorageService::~StorageService() {
  pool_.reset();
  // Opens in progress finish and hand the rest of their reads to the loops.
  openers_.reset();
  // A read reports to this service when it completes, on its loop: wait for
  // those still in flight (bounded; never from a loop thread, whose reads
  // could not complete while it waits here).
  if (std::none_of(loops_.begin(), loops_.end(), [](loop::EventLoop* l) { return l->InLoopThread(); })) {
    std::unique_lock<std::mutex> l(reads_in_flight_.mu);
    reads_in_flight_.drained.wait_for(l, std::chrono::seconds(10), [this] { return reads_in_flight_.count.load() == 0; });
  }
  if (int64_t left = reads_in_flight_.count.load(); left > 0)
    LOG_ERROR("storage service stopping with {} reads still in flight", left);
}

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
      {"shoal_storage_journaled_writes_total", "writes of new small chunks acknowledged from the write journal",
       &StoreStats::journaled_writes},
      {"shoal_storage_journal_commits_total", "syncs of the write journal (each makes a group of writes durable)",
       &StoreStats::journal_commits},
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
  RenderMetric(&out, "shoal_storage_remove_requests_total", "counter",
               "requests to remove the chunks of deleted files (each names one inode or many)",
               static_cast<double>(remove_requests_.load()));
  RenderMetric(&out, "shoal_storage_reads_in_flight", "gauge", "batched read requests being served",
               static_cast<double>(reads_in_flight_.count.load()));
  read_latency_.Render(&out, "shoal_storage_read_seconds", "batched read latency, arrival to reply");
  return out;
}

namespace {
// One STORAGE_READ / STORAGE_READ_PACKED in progress: its ops and their
// buffers live until the reply has been sent (the payload goes out straight
// from them).
struct ReadCall {
  std::unique_ptr<rpc::LoopCall> call;
  std::vector<ReadOp> ops;
  bool packed = false;
  std::atomic<int> groups{0};  // stores still reading
  std::chrono::steady_clock::time_point start;
  StorageService::ReadsInFlight* in_flight;
  Histogram* latency;

  // Replies and hands itself to the reply's release.
  static void Respond(ReadCall* rc) {
    std::vector<iovec> payload;
    payload.reserve(rc->ops.size());
    std::string message;
    if (rc->packed) {
      proto::ReadResultsWriter results(rc->ops.size());
      for (size_t i = 0; i < rc->ops.size(); ++i) {
        const ReadOp& op = rc->ops[i];
        results.Set(i, op.status.code(), op.status.message());
        if (op.status.ok()) payload.push_back({const_cast<uint8_t*>(op.data), op.length});
      }
      message = results.Take();
    } else {
      proto::ReadRsp rsp;
      for (auto& op : rc->ops) {
        auto* r = rsp.add_results();
        r->set_code(op.status.code());
        if (op.status.ok()) {
          payload.push_back({const_cast<uint8_t*>(op.data), op.length});
        } else {
          r->set_message(op.status.message());
        }
      }
      message = rsp.SerializeAsString();
    }
    rc->latency->Observe(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - rc->start).count());
    rc->in_flight->End();
    rpc::LoopCall* call = rc->call.get();
    call->ReplyRaw(std::move(message), payload.data(), static_cast<int>(payload.size()), [rc] { delete rc; });
  }
};
}  // namespace

Status StorageService::CheckReadSize(uint64_t items, uint64_t bytes) const {
  if (items > options_.max_read_items)
    return Error(proto::TOO_LARGE,
                 "read of " + std::to_string(items) + " items exceeds " + std::to_string(options_.max_read_items));
  if (bytes > options_.max_read_bytes)
    return Error(proto::TOO_LARGE,
                 "read of " + std::to_string(bytes) + " bytes exceeds " + std::to_string(options_.max_read_bytes));
  return Status::OK();
}

void StorageService::HandleRead(std::unique_ptr<rpc::LoopCall> call) {
  proto::ReadReq req;
  if (!call->Parse(&req)) return;
  uint64_t total = 0;
  for (const auto& item : req.items()) total += item.length();
  if (Status st = CheckReadSize(req.items_size(), total); !st.ok()) return call->ReplyError(st);
  std::vector<uint32_t> targets(req.items_size());
  std::vector<ReadOp> ops(req.items_size());
  for (int i = 0; i < req.items_size(); ++i) {
    const auto& item = req.items(i);
    ReadOp& op = ops[i];
    op.inode = item.chunk().inode();
    op.index = item.chunk().index();
    op.offset = item.offset();
    op.length = item.length();
    op.chunk_size = item.chunk_size();
    targets[i] = item.chunk().target_id();
  }
  StartRead(std::move(call), std::move(ops), targets.data(), /*packed=*/false);
}

void StorageService::HandlePackedRead(std::unique_ptr<rpc::LoopCall> call) {
  const std::string_view msg = call->message();
  size_t n = 0;
  if (!proto::CountReadItems(msg, &n))
    return call->ReplyError(Error(proto::PROTOCOL_ERROR, "packed read of " + std::to_string(msg.size()) +
                                                             " bytes is not a whole number of items"));
  uint64_t total = 0;
  for (size_t i = 0; i < n; ++i) total += proto::ReadItemAt(msg, i).length;
  if (Status st = CheckReadSize(n, total); !st.ok()) return call->ReplyError(st);
  std::vector<uint32_t> targets(n);
  std::vector<ReadOp> ops(n);
  for (size_t i = 0; i < n; ++i) {
    const proto::ReadItemRecord item = proto::ReadItemAt(msg, i);
    ReadOp& op = ops[i];
    op.inode = item.inode;
    op.index = item.index;
    op.offset = item.offset;
    op.length = item.length;
    op.chunk_size = item.chunk_size;
    targets[i] = item.target_id;
  }
  StartRead(std::move(call), std::move(ops), targets.data(), /*packed=*/true);
}

void StorageService::StartRead(std::unique_ptr<rpc::LoopCall> call, std::vector<ReadOp> ops, const uint32_t* targets,
                               bool packed) {
  ReadEngine* engine = EngineFor(call->loop());
  auto* rc = new ReadCall;
  rc->call = std::move(call);
  rc->ops = std::move(ops);
  rc->packed = packed;
  rc->start = std::chrono::steady_clock::now();
  rc->in_flight = &reads_in_flight_;
  rc->latency = &read_latency_;
  reads_in_flight_.Start();
  // Ops grouped by store; a request names one target or a few, so a short
  // list beats a map.
  std::vector<std::pair<ChunkStore*, std::vector<ReadOp*>>> groups;
  for (size_t i = 0; i < rc->ops.size(); ++i) {
    ReadOp& op = rc->ops[i];
    ChunkStore* store = Find(targets[i]);
    if (!store) {
      op.status = Error(proto::NOT_FOUND, "no target " + std::to_string(targets[i]) + " here");
      continue;
    }
    auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& x) { return x.first == store; });
    if (g == groups.end()) {
      groups.emplace_back(store, std::vector<ReadOp*>());
      groups.back().second.reserve(rc->ops.size());
      g = groups.end() - 1;
    }
    g->second.push_back(&op);
  }
  if (groups.empty()) return ReadCall::Respond(rc);
  // One more than the stores, released below: a store that completes inline
  // cannot reply before every store has started.
  rc->groups = static_cast<int>(groups.size()) + 1;
  for (auto& [store, group] : groups)
    store->ReadOn(std::move(group), [rc] {
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
  server.Register(proto::STORAGE_READ_PACKED, [this](auto call) { HandlePackedRead(std::move(call)); });
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
      std::vector<uint64_t> inodes(req.inodes().begin(), req.inodes().end());
      if (req.inode()) inodes.push_back(req.inode());
      std::vector<uint64_t> failed;
      Status st = store->RemoveMany(inodes, &failed);
      s->remove_requests_.fetch_add(1, std::memory_order_relaxed);
      if (req.inodes_size() == 0 && !st.ok()) return c.ReplyError(st);
      proto::RemoveRsp rsp;
      rsp.set_tried(static_cast<uint32_t>(inodes.size()));
      for (uint64_t inode : failed) rsp.add_failed(inode);
      if (!st.ok()) rsp.set_error(st.ToString());
      c.Reply(rsp);
    });
  });
  server.Register(proto::STORAGE_STATS, [this](auto call) { call->Reply(Stats()); });
}

}  // namespace shoal::storage
