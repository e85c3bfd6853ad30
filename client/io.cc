// libshoal data path: striped, batched, parallel chunk reads and writes.
#include <future>

#include "client/client.h"
#include "client/timer.h"
#include "common/crc32c.h"
#include "proto/storage.pb.h"

namespace shoal::client {

struct Client::Piece {
  uint64_t index;
  uint32_t offset;  // within the chunk
  uint32_t length;
  uint8_t* dst;        // reads
  const uint8_t* src;  // writes
};

// One RPC's worth of pieces, all on one server.
struct Client::Request {
  Placement where;
  std::vector<Piece> pieces;
  int attempts = 0;
};

struct Client::Op {
  Attr file;
  size_t total = 0;
  IoCallback done;
  std::atomic<int> pending{0};
  std::mutex mu;
  Status error;  // the first failure, guarded by mu
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
}  // namespace

std::shared_ptr<Client::Op> Client::NewOp(const Attr& file, size_t total, IoCallback done, int requests) {
  auto op = std::make_shared<Op>();
  op->file = file;
  op->total = total;
  op->done = std::move(done);
  op->pending = requests;
  return op;
}

void Client::Finish(const std::shared_ptr<Op>& op) {
  Status err;
  {
    std::lock_guard<std::mutex> l(op->mu);
    err = op->error;
  }
  if (err.ok()) op->done(op->total);
  else op->done(err);
}

void Client::Retry(std::shared_ptr<Op> op, std::shared_ptr<Request> req, Status why, bool is_write) {
  if (Retryable(why) && ++req->attempts < options_.io_attempts) {
    int backoff_ms = 20 << std::min(req->attempts, 6);
    timer_->After(backoff_ms, [this, op, req, is_write] {
      auto where = Place(op->file.layout(), req->pieces.front().index);
      if (where.ok()) req->where = *where;
      if (is_write) SendWrite(op, req);
      else SendRead(op, req);
    });
    return;
  }
  {
    std::lock_guard<std::mutex> l(op->mu);
    if (op->error.ok()) op->error = why;
  }
  if (--op->pending == 0) Finish(op);
}

void Client::SendRead(std::shared_ptr<Op> op, std::shared_ptr<Request> req) {
  proto::ReadReq rr;
  std::vector<iovec> sink;
  sink.reserve(req->pieces.size());
  uint64_t expected = 0;
  for (const Piece& p : req->pieces) {
    proto::ReadItem* item = rr.add_items();
    item->mutable_chunk()->set_target_id(req->where.target_id);
    item->mutable_chunk()->set_inode(op->file.ino());
    item->mutable_chunk()->set_index(p.index);
    item->set_offset(p.offset);
    item->set_length(p.length);
    item->set_chunk_size(op->file.layout().chunk_size());
    sink.push_back({p.dst, p.length});
    expected += p.length;
  }
  channels_.Get(req->where.address)
      ->Call(proto::STORAGE_READ, rr, nullptr, 0, std::move(sink), options_.io_timeout_ms,
             [this, op, req, expected](Status st, const std::string& msg, uint32_t payload_len) {
               if (st.ok()) {
                 proto::ReadRsp rsp;
                 if (!rsp.ParseFromString(msg) || rsp.results_size() != static_cast<int>(req->pieces.size())) {
                   st = Error(proto::PROTOCOL_ERROR, "malformed read response");
                 } else {
                   for (const auto& r : rsp.results())
                     if (r.code() != proto::OK) {
                       st = Error(r.code(), r.message());
                       break;
                     }
                   if (st.ok() && payload_len != expected) st = Error(proto::PROTOCOL_ERROR, "short read payload");
                 }
               }
               if (!st.ok()) return Retry(op, req, st, false);
               if (--op->pending == 0) Finish(op);
             });
}

void Client::SendWrite(std::shared_ptr<Op> op, std::shared_ptr<Request> req) {
  const Piece& p = req->pieces.front();  // writes carry one chunk piece each
  proto::WriteReq wr;
  wr.mutable_chunk()->set_target_id(req->where.target_id);
  wr.mutable_chunk()->set_inode(op->file.ino());
  wr.mutable_chunk()->set_index(p.index);
  wr.set_offset(p.offset);
  wr.set_length(p.length);
  wr.set_chunk_size(op->file.layout().chunk_size());
  wr.set_payload_crc32c(Crc32c(p.src, p.length));
  iovec payload{const_cast<uint8_t*>(p.src), p.length};
  channels_.Get(req->where.address)
      ->Call(proto::STORAGE_WRITE, wr, &payload, 1, {}, options_.io_timeout_ms,
             [this, op, req](Status st, const std::string&, uint32_t) {
               if (!st.ok()) return Retry(op, req, st, true);
               if (--op->pending == 0) Finish(op);
             });
}

void Client::ReadAsync(const Attr& file, uint64_t offset, size_t length, uint8_t* buf, IoCallback done) {
  if (file.type() == proto::DIRECTORY) return done(Error(proto::IS_DIRECTORY, "is a directory"));
  if (file.type() != proto::REGULAR) return done(Error(proto::INVALID_ARGUMENT, "not a regular file"));
  if (offset >= file.size() || length == 0) return done(size_t{0});
  length = std::min<uint64_t>(length, file.size() - offset);
  const uint32_t cs = file.layout().chunk_size();
  if (cs == 0) return done(Error(proto::INTERNAL, "file has no chunk size"));

  // Group the chunk pieces by server, capping each request's size.
  std::map<uint32_t, std::vector<std::shared_ptr<Request>>> by_target;
  std::map<uint32_t, uint64_t> open_bytes;  // bytes in each target's last request
  Status st = ForEachPiece(cs, offset, length, [&](uint64_t index, uint32_t coff, uint32_t n, uint64_t at) {
    ASSIGN_OR_RETURN(Placement where, Place(file.layout(), index));
    auto& reqs = by_target[where.target_id];
    uint64_t& bytes = open_bytes[where.target_id];
    if (reqs.empty() || bytes + n > options_.max_request_bytes) {
      reqs.push_back(std::make_shared<Request>());
      reqs.back()->where = where;
      bytes = 0;
    }
    reqs.back()->pieces.push_back(Piece{index, coff, n, buf + at, nullptr});
    bytes += n;
    return Status::OK();
  });
  if (!st.ok()) return done(st);
  int count = 0;
  for (auto& [t, reqs] : by_target) count += static_cast<int>(reqs.size());
  auto op = NewOp(file, length, std::move(done), count);
  for (auto& [t, reqs] : by_target)
    for (auto& r : reqs) SendRead(op, r);
}

void Client::WriteAsync(const Attr& file, uint64_t offset, size_t length, const uint8_t* data, IoCallback done) {
  if (file.type() != proto::REGULAR) return done(Error(proto::INVALID_ARGUMENT, "not a regular file"));
  if (length == 0) return done(size_t{0});
  const uint32_t cs = file.layout().chunk_size();
  if (cs == 0) return done(Error(proto::INTERNAL, "file has no chunk size"));
  std::vector<std::shared_ptr<Request>> reqs;
  Status st = ForEachPiece(cs, offset, length, [&](uint64_t index, uint32_t coff, uint32_t n, uint64_t at) {
    ASSIGN_OR_RETURN(Placement where, Place(file.layout(), index));
    auto r = std::make_shared<Request>();
    r->where = where;
    r->pieces.push_back(Piece{index, coff, n, nullptr, data + at});
    reqs.push_back(std::move(r));
    return Status::OK();
  });
  if (!st.ok()) return done(st);
  auto op = NewOp(file, length, std::move(done), static_cast<int>(reqs.size()));
  for (auto& r : reqs) SendWrite(op, r);
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
  auto now = std::chrono::steady_clock::now().time_since_epoch() / std::chrono::milliseconds(1);
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
  if (items.empty()) return Status::OK();
  for (auto& it : items) {
    auto& f = files.at(it.ino);
    auto finish = [&all, &left, &it](Result<size_t> r) {
      if (r.ok()) it.bytes = *r;
      else it.status = r.status();
      if (--left == 0) all.set_value();
    };
    if (!f.ok()) finish(f.status());
    else ReadAsync(*f, it.offset, it.length, it.buf, finish);
  }
  all.get_future().wait();
  return Status::OK();
}

}  // namespace shoal::client
