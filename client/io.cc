// libshoal data path: striped, batched, parallel chunk reads and writes.
#include <future>

#include "client/client.h"
#include "client/timer.h"
#include "common/crc32c.h"
#include "common/rpc/server.h"
#include "proto/read_records.h"
#include "proto/storage.pb.h"

namespace shoal::client {

// One logical read or write: done when all of its pieces are.
struct Client::Op {
  // What the pieces need of the file; not its whole Attr (a copy of a
  // protobuf with its layout costs several allocations per read).
  uint64_t ino = 0;
  uint32_t chunk_size = 0;
  size_t total = 0;
  IoCallback done;
  std::atomic<int> pending{0};  // pieces not yet completed
  std::mutex mu;
  Status error;  // the first failure, guarded by mu
};

// A contiguous part of an op inside one chunk.
struct Client::Piece {
  std::shared_ptr<Op> op;
  uint64_t index;
  uint32_t chain_id;  // the chain that stores chunk `index` (placement on retry)
  uint32_t offset;  // within the chunk
  uint32_t length;
  uint8_t* dst;        // reads
  const uint8_t* src;  // writes
};

// One RPC's worth of pieces, all on one server (possibly of several ops).
struct Client::Request {
  Placement where;
  std::vector<Piece> pieces;
  int attempts = 0;
  // Writes: the write lane and sequence number (write_lanes.h), the same on
  // every attempt.
  uint32_t lane = 0;
  uint64_t seq = 0;
};

namespace {
bool Retryable(const Status& st) {
  switch (st.code()) {
    case proto::UNAVAILABLE:
    case proto::TIMEOUT:
    case proto::STALE_VERSION:
    case proto::NOT_FOUND:  // the target moved away from that node
      return true;
    default:
      return false;
  }
}

// Calls fn(chunk index, offset in chunk, length, offset in the range) for each
// chunk piece of [offset, offset + length), stopping at the first error.
template <typename Fn>
Status ForEachPiece(uint32_t chunk_size, uint64_t offset, uint64_t length, Fn fn) {
  for (uint64_t pos = offset, end = offset + length; pos < end;) {
    uint32_t coff = static_cast<uint32_t>(pos % chunk_size);
    uint32_t n = static_cast<uint32_t>(std::min<uint64_t>(chunk_size - coff, end - pos));
    RETURN_IF_ERROR(fn(pos / chunk_size, coff, n, pos - offset));
    pos += n;
  }
  return Status::OK();
}

Status CheckRegular(const Attr& file) {
  if (file.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, "is a directory");
  if (file.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, "not a regular file");
  if (file.layout().chunk_size() == 0) return Error(proto::INTERNAL, "file has no chunk size");
  return Status::OK();
}
}  // namespace

void Client::CompletePiece(const Piece& p, const Status& st) {
  Op& op = *p.op;
  if (!st.ok()) {
    std::lock_guard<std::mutex> l(op.mu);
    if (op.error.ok()) op.error = st;
  }
  if (--op.pending == 0) {
    Status err;
    {
      std::lock_guard<std::mutex> l(op.mu);
      err = op.error;
    }
    if (err.ok()) op.done(op.total);
    else op.done(err);
  }
}

void Client::CompletePieces(const Request& req, const Status& st) {
  for (const Piece& p : req.pieces) CompletePiece(p, st);
}

void Client::FinishRequest(const Request& req, const Status& st, bool is_write) {
  CompletePieces(req, st);
  if (is_write) lanes_.Release(req.lane);
}

void Client::Retry(std::shared_ptr<Request> req, Status why, bool is_write) {
  std::shared_lock<std::shared_mutex> l(closing_mu_);
  if (closing_) {
    l.unlock();
    return FinishRequest(*req, Error(proto::CANCELLED, "client closed: " + why.ToString()), is_write);
  }
  if (Retryable(why) && ++req->attempts < options_.io_attempts) {
    int backoff_ms = 20 << std::min(req->attempts, 6);
    timer_->After(backoff_ms, [this, req, is_write] {
      {
        std::shared_lock<std::shared_mutex> cl(closing_mu_);
        if (closing_) {
          cl.unlock();
          return FinishRequest(*req, Error(proto::CANCELLED, "client closed"), is_write);
        }
      }
      // Every piece of a request is on one target; with one replica per chain,
      // the first piece's placement is the whole request's.
      const Piece& first = req->pieces.front();
      auto where = PlaceChain(first.chain_id);
      if (where.ok()) req->where = *where;
      if (is_write) SendWrite(req);
      else SendRead(req);
    });
    return;
  }
  l.unlock();
  FinishRequest(*req, why, is_write);
}

void Client::SendRead(std::shared_ptr<Request> req) {
  Server* s = ServerFor(req->where.address);
  if (s->loop->InLoopThread()) return QueueRead(s, std::move(req));
  s->loop->Post([this, s, req = std::move(req)]() mutable { QueueRead(s, std::move(req)); });
}

void Client::QueueRead(Server* s, std::shared_ptr<Request> req) {
  s->queued.push_back(std::move(req));
  if (s->flush_scheduled) return;
  s->flush_scheduled = true;
  s->loop->AtEndOfIteration([this, s] { FlushReads(s); });
}

// Every read queued for the server in this iteration leaves now, as few
// frames as max_request_bytes allows.
void Client::FlushReads(Server* s) {
  s->flush_scheduled = false;
  std::vector<std::shared_ptr<Request>> queued = std::move(s->queued);
  s->queued.clear();
  for (size_t i = 0; i < queued.size();) {
    std::vector<std::shared_ptr<Request>> frame;
    std::string items;  // packed item records (proto/read_records.h)
    size_t nitems = 0;
    std::vector<iovec> sink;
    uint64_t expected = 0;
    for (; i < queued.size(); ++i) {
      uint64_t bytes = 0;
      for (const Piece& p : queued[i]->pieces) bytes += p.length;
      if (!frame.empty() && (expected + bytes > options_.max_request_bytes ||
                             nitems + queued[i]->pieces.size() > rpc::kDefaultMaxItemsPerRequest))
        break;
      const Request& req = *queued[i];
      items.reserve(items.size() + req.pieces.size() * proto::kReadItemBytes);
      for (const Piece& p : req.pieces) {
        proto::ReadItemRecord item;
        item.target_id = req.where.target_id;
        item.chunk_size = p.op->chunk_size;
        item.inode = p.op->ino;
        item.index = p.index;
        item.offset = p.offset;
        item.length = p.length;
        proto::AppendReadItem(&items, item);
        sink.push_back({p.dst, p.length});
      }
      nitems += req.pieces.size();
      expected += bytes;
      frame.push_back(queued[i]);
    }
    s->channel->CallOnLoop(proto::STORAGE_READ_PACKED, std::move(items), {}, std::move(sink), options_.io_timeout_ms,
                           [this, frame = std::move(frame), expected](Status st, const std::string& msg,
                                                                      uint32_t payload_len) {
                             OnReadResponse(frame, std::move(st), msg, payload_len, expected);
                           });
  }
}

void Client::OnReadResponse(const std::vector<std::shared_ptr<Request>>& reqs, Status st, const std::string& msg,
                            uint32_t payload_len, uint64_t expected) {
  size_t items = 0;
  for (const auto& r : reqs) items += r->pieces.size();
  proto::ReadResultsReader rsp(msg, items);
  if (st.ok() && !rsp.Valid()) st = Error(proto::PROTOCOL_ERROR, "malformed read response");
  if (!st.ok()) {
    for (const auto& r : reqs) Retry(r, st, false);
    return;
  }
  if (payload_len == expected) {
    for (const auto& r : reqs) CompletePieces(*r, Status::OK());
    return;
  }
  // Some items failed. The payload holds only the OK items, so every byte
  // after the first failure sits out of place: items that failed for good fail
  // alone, the rest (OK or not) are read again.
  bool any_failed = false;
  for (size_t i = 0; i < items; ++i) any_failed |= rsp.code(i) != proto::OK;
  if (!any_failed) {
    for (const auto& r : reqs) Retry(r, Error(proto::PROTOCOL_ERROR, "read payload does not match the results"), false);
    return;
  }
  size_t i = 0;
  for (const auto& req : reqs) {
    auto again = std::make_shared<Request>();
    again->where = req->where;
    again->attempts = req->attempts;
    Status retry_why;
    for (const Piece& piece : req->pieces) {
      proto::ErrorCode code = rsp.code(i);
      std::string_view text = rsp.NextMessage(i++);
      Status item = code == proto::OK ? Status::OK() : Error(code, std::string(text));
      if (!item.ok() && !Retryable(item)) {
        CompletePiece(piece, item);
        continue;
      }
      if (!item.ok()) retry_why = item;
      again->pieces.push_back(piece);
    }
    if (again->pieces.empty()) continue;
    Retry(again, retry_why.ok() ? Error(proto::UNAVAILABLE, "items re-read after a failed neighbour") : retry_why,
          false);
  }
}

void Client::SendWrite(std::shared_ptr<Request> req) {
  const Piece& p = req->pieces.front();  // writes carry one chunk piece each
  proto::WriteReq wr;
  wr.mutable_chunk()->set_target_id(req->where.target_id);
  wr.mutable_chunk()->set_inode(p.op->ino);
  wr.mutable_chunk()->set_index(p.index);
  wr.set_offset(p.offset);
  wr.set_length(p.length);
  wr.set_chunk_size(p.op->chunk_size);
  wr.set_payload_crc32c(Crc32c(p.src, p.length));
  wr.set_client_id(lanes_.client_id());
  wr.set_lane(req->lane);
  wr.set_seq(req->seq);
  iovec payload{const_cast<uint8_t*>(p.src), p.length};
  ServerFor(req->where.address)
      ->channel->Call(proto::STORAGE_WRITE, wr, &payload, 1, {}, options_.io_timeout_ms,
             [this, req](Status st, const std::string&, uint32_t) {
               if (!st.ok()) return Retry(req, st, true);
               FinishRequest(*req, Status::OK(), true);
             });
}

void Client::ReadMany(std::vector<ReadSpec> reads) {
  std::map<uint32_t, std::vector<std::shared_ptr<Request>>> by_target;
  std::map<uint32_t, uint64_t> open_bytes;  // bytes in each target's last request
  for (ReadSpec& r : reads) {
    const Attr& file = *r.file;
    if (Status st = CheckRegular(file); !st.ok()) {
      r.done(st);
      continue;
    }
    if (r.offset >= r.end || r.length == 0) {
      r.done(size_t{0});
      continue;
    }
    size_t length = std::min<uint64_t>(r.length, r.end - r.offset);
    auto op = std::make_shared<Op>();
    op->ino = file.ino();
    op->chunk_size = file.layout().chunk_size();
    op->total = length;
    op->done = std::move(r.done);
    // Place every piece before queuing any, so a failure leaves no half-read behind.
    std::vector<std::pair<Placement, Piece>> placed;
    Status st = ForEachPiece(file.layout().chunk_size(), r.offset, length,
                             [&](uint64_t index, uint32_t coff, uint32_t n, uint64_t at) {
                               ASSIGN_OR_RETURN(Placement where, Place(file.layout(), index));
                               placed.emplace_back(where, Piece{op, index, where.chain_id, coff, n, r.buf + at, nullptr});
                               return Status::OK();
                             });
    if (!st.ok()) {
      op->done(st);
      continue;
    }
    op->pending = static_cast<int>(placed.size());
    for (auto& [where, piece] : placed) {
      auto& reqs = by_target[where.target_id];
      uint64_t& bytes = open_bytes[where.target_id];
      if (reqs.empty() || bytes + piece.length > options_.max_request_bytes ||
          reqs.back()->pieces.size() >= rpc::kDefaultMaxItemsPerRequest) {
        reqs.push_back(std::make_shared<Request>());
        reqs.back()->where = where;
        bytes = 0;
      }
      bytes += piece.length;
      reqs.back()->pieces.push_back(std::move(piece));
    }
  }
  for (auto& [t, reqs] : by_target)
    for (auto& req : reqs) SendRead(req);
}

void Client::ReadAsync(const Attr& file, uint64_t offset, size_t length, uint8_t* buf, IoCallback done,
                       std::optional<uint64_t> end) {
  std::vector<ReadSpec> one;
  one.push_back(ReadSpec{&file, end.value_or(file.size()), offset, length, buf, std::move(done)});
  ReadMany(std::move(one));
}

void Client::ReadAsyncMany(std::vector<AsyncRead> reads) {
  std::vector<ReadSpec> specs;
  specs.reserve(reads.size());
  for (AsyncRead& r : reads)
    specs.push_back(ReadSpec{r.file, r.file->size(), r.offset, r.length, r.buf, std::move(r.done)});
  ReadMany(std::move(specs));
}

void Client::WriteAsync(const Attr& file, uint64_t offset, size_t length, const uint8_t* data, IoCallback done) {
  if (Status st = CheckRegular(file); !st.ok()) return done(st);
  if (length == 0) return done(size_t{0});
  auto op = std::make_shared<Op>();
  op->ino = file.ino();
  op->chunk_size = file.layout().chunk_size();
  op->total = length;
  op->done = std::move(done);
  std::vector<std::shared_ptr<Request>> reqs;
  Status st = ForEachPiece(file.layout().chunk_size(), offset, length,
                           [&](uint64_t index, uint32_t coff, uint32_t n, uint64_t at) {
                             ASSIGN_OR_RETURN(Placement where, Place(file.layout(), index));
                             auto r = std::make_shared<Request>();
                             r->where = where;
                             r->pieces.push_back(Piece{op, index, where.chain_id, coff, n, nullptr, data + at});
                             reqs.push_back(std::move(r));
                             return Status::OK();
                           });
  if (!st.ok()) return op->done(st);
  op->pending = static_cast<int>(reqs.size());
  for (auto& r : reqs) {
    const Piece& p = r->pieces.front();
    lanes_.Acquire(WriteLanes::LaneOf(file.ino(), p.index), [this, r](uint32_t lane, uint64_t seq) {
      r->lane = lane;
      r->seq = seq;
      SendWrite(r);
    });
  }
}

namespace {
Result<size_t> Wait(const std::function<void(IoCallback)>& start) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  start([&p](Result<size_t> r) { p.set_value(std::move(r)); });
  return f.get();
}
}  // namespace

Result<size_t> Client::Read(const Attr& file, uint64_t offset, size_t length, uint8_t* buf) {
  return Wait([&](IoCallback cb) { ReadAsync(file, offset, length, buf, std::move(cb)); });
}

Result<size_t> Client::Write(const Attr& file, uint64_t offset, size_t length, const uint8_t* data) {
  return Wait([&](IoCallback cb) { WriteAsync(file, offset, length, data, std::move(cb)); });
}

Status Client::ReadBatch(std::vector<BatchReadItem>& items) {
  if (items.empty()) return Status::OK();
  int64_t now = options_.clock->NowMs();
  std::map<uint64_t, Result<Attr>> files;
  for (const auto& it : items) {
    if (files.count(it.ino)) continue;
    {
      std::lock_guard<std::mutex> l(attr_mu_);
      auto c = attrs_.find(it.ino);
      if (c != attrs_.end() && c->second.second > now) {
        files.emplace(it.ino, c->second.first);
        continue;
      }
    }
    auto a = GetAttr(it.ino);
    if (a.ok() && options_.dentry_cache_ms > 0) {
      std::lock_guard<std::mutex> l(attr_mu_);
      attrs_[it.ino] = {*a, now + options_.dentry_cache_ms};
    }
    files.emplace(it.ino, std::move(a));
  }
  std::promise<void> all;
  std::atomic<size_t> left{items.size()};
  std::vector<ReadSpec> specs;
  for (auto& it : items) {
    auto finish = [&all, &left, &it](Result<size_t> r) {
      if (r.ok()) it.bytes = *r;
      else it.status = r.status();
      if (--left == 0) all.set_value();
    };
    const auto& f = files.at(it.ino);
    if (!f.ok()) finish(f.status());
    else specs.push_back(ReadSpec{&f.value(), f->size(), it.offset, it.length, it.buf, finish});
  }
  // One request per server (up to max_request_bytes) for the whole batch.
  ReadMany(std::move(specs));
  all.get_future().wait();
  return Status::OK();
}

}  // namespace shoal::client
