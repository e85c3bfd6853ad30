// The O_DIRECT chunk store. Reads go through io_uring (batched submission,
// many in flight, one completion thread); nothing goes through the page cache.
//
// Each chunk is one file, <dir>/chunks/<ino % 256>/<ino>/<index>, holding the
// header (chunk_format.h) and then the data blocks. A file is never modified
// in place: a write builds the new version in <index>.tmp, fsyncs it and
// renames it over the old one, so a reader that opened the old file keeps a
// consistent (header, data) pair. Open files and their parsed headers are
// cached; a cache hit costs one disk read, a miss reads header and data at once.
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/crc32c.h"
#include "common/log.h"
#include "storage/chunk_format.h"
#include "storage/chunk_store.h"

namespace shoal::storage {

std::string ChunkFilePath(const std::string& dir, uint64_t inode, uint64_t index) {
  char buf[96];
  snprintf(buf, sizeof(buf), "/chunks/%02x/%016" PRIx64 "/%" PRIu64, static_cast<unsigned>(inode & 0xff), inode, index);
  return dir + buf;
}

namespace {

uint32_t RoundUp(uint64_t n) { return static_cast<uint32_t>((n + kBlockSize - 1) / kBlockSize * kBlockSize); }

std::string InodeDir(const std::string& dir, uint64_t inode) {
  std::string p = ChunkFilePath(dir, inode, 0);
  return p.substr(0, p.rfind('/'));
}

Status PreadFull(int fd, uint8_t* buf, size_t len, off_t off, size_t* got) {
  *got = 0;
  while (*got < len) {
    ssize_t r = ::pread(fd, buf + *got, len - *got, off + static_cast<off_t>(*got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pread");
    }
    if (r == 0) break;
    *got += static_cast<size_t>(r);
  }
  return Status::OK();
}

Status PwriteFull(int fd, const uint8_t* buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t w = ::pwrite(fd, buf + done, len - done, off + static_cast<off_t>(done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "pwrite");
    }
    done += static_cast<size_t>(w);
  }
  return Status::OK();
}

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open " + path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  return rc == 0 ? Status::OK() : Status::FromErrno(err, "fsync " + path);
}

struct ChunkFile {
  int fd = -1;
  ChunkHeader header;
  ~ChunkFile() {
    if (fd >= 0) ::close(fd);
  }
};

struct Key {
  uint64_t inode, index;
  bool operator==(const Key& o) const { return inode == o.inode && index == o.index; }
};
struct KeyHash {
  size_t operator()(const Key& k) const { return k.inode * 0x9E3779B97F4A7C15ull ^ (k.index + 0x632BE59BD9B4E019ull); }
};

struct BatchState {
  std::atomic<size_t> remaining;
  std::function<void()> done;
};

struct OpState;
struct IoTag {
  OpState* st;
  int32_t res = 0;
};

struct OpState {
  ReadOp* op = nullptr;
  BatchState* batch = nullptr;
  std::shared_ptr<ChunkFile> file;  // hit: the cached file
  int miss_fd = -1;                 // miss: opened here, header still unread
  uint64_t mutations_at_open = 0;
  AlignedBuffer header_buf;
  uint32_t start = 0;  // aligned range [start, end) of the chunk's data in op->buffer
  uint32_t end = 0;
  int pending = 0;
  IoTag header_io{this}, data_io{this};
};

class UringChunkStore : public ChunkStore {
 public:
  UringChunkStore(std::string dir, UringOptions opts) : dir_(std::move(dir)), opts_(opts) {}

  Status Init() {
    std::error_code ec;
    std::filesystem::create_directories(dir_ + "/chunks", ec);
    if (ec) return Error(proto::IO_ERROR, "create " + dir_ + "/chunks: " + ec.message());
    RETURN_IF_ERROR(ProbeDirectIo());
    io_uring_params p{};
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = opts_.ring_entries * 4;
    int rc = io_uring_queue_init_params(opts_.ring_entries, &ring_, &p);
    if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init");
    ring_ok_ = true;
    reaper_ = std::thread([this] { CompletionLoop(); });
    return Status::OK();
  }

  ~UringChunkStore() override {
    if (!ring_ok_) return;
    {
      std::lock_guard<std::mutex> l(sq_mu_);
      stopping_ = true;
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_nop(sqe);
      io_uring_sqe_set_data(sqe, nullptr);
      io_uring_submit(&ring_);
    }
    reaper_.join();
    io_uring_queue_exit(&ring_);
  }

  void Read(std::vector<ReadOp*> ops, std::function<void()> done) override {
    if (ops.empty()) return done();
    auto* batch = new BatchState{ops.size(), std::move(done)};
    std::vector<std::tuple<int, uint8_t*, uint32_t, uint64_t, IoTag*>> ios;  // fd, buf, len, offset, tag
    for (ReadOp* op : ops) {
      auto* st = new OpState;
      st->op = op;
      st->batch = batch;
      Status v = Prepare(st, &ios);
      if (!v.ok() || st->pending == 0) {
        if (!v.ok()) op->status = v;
        Finish(st);
      }
    }
    if (ios.empty()) return;
    std::lock_guard<std::mutex> l(sq_mu_);
    for (auto& [fd, buf, len, off, tag] : ios) {
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_read(sqe, fd, buf, len, off);
      io_uring_sqe_set_data(sqe, tag);
    }
    io_uring_submit(&ring_);
  }

  Status Write(uint64_t inode, uint64_t index, uint32_t offset, const uint8_t* data, uint32_t length,
               uint32_t chunk_size) override {
    RETURN_IF_ERROR(CheckChunkSize(chunk_size));
    if (uint64_t{offset} + length > chunk_size) return Error(proto::INVALID_ARGUMENT, "write leaves the chunk");
    RETURN_IF_ERROR(Rewrite(inode, index, chunk_size, offset, data, length, -1));
    stats_.writes++;
    stats_.write_bytes += length;
    return Status::OK();
  }

  Status Truncate(uint64_t inode, uint64_t length, uint32_t chunk_size) override {
    RETURN_IF_ERROR(CheckChunkSize(chunk_size));
    std::string idir = InodeDir(dir_, inode);
    DIR* d = ::opendir(idir.c_str());
    if (!d) return errno == ENOENT ? Status::OK() : Status::FromErrno(errno, "opendir " + idir);
    std::vector<uint64_t> indexes;
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      uint64_t idx = strtoull(e->d_name, &end, 10);
      if (e->d_name[0] != '.' && *end == '\0') indexes.push_back(idx);
    }
    ::closedir(d);
    for (uint64_t idx : indexes) {
      uint64_t start = idx * chunk_size;
      if (start >= length) {
        std::lock_guard<std::mutex> l(LockFor(inode, idx));
        mutations_++;
        if (::unlink(ChunkFilePath(dir_, inode, idx).c_str()) < 0 && errno != ENOENT)
          return Status::FromErrno(errno, "unlink chunk");
        EraseCached(Key{inode, idx});
        mutations_++;
      } else if (length - start < chunk_size) {
        RETURN_IF_ERROR(Rewrite(inode, idx, chunk_size, 0, nullptr, 0, static_cast<int64_t>(length - start)));
      }
    }
    return FsyncPath(idir);
  }

  Status Remove(uint64_t inode) override {
    mutations_++;
    std::error_code ec;
    std::filesystem::remove_all(InodeDir(dir_, inode), ec);
    {
      std::lock_guard<std::mutex> l(cache_mu_);
      for (auto it = cache_.begin(); it != cache_.end();) {
        if (it->first.inode == inode) it = cache_.erase(it);
        else ++it;
      }
    }
    mutations_++;
    if (ec) return Error(proto::IO_ERROR, "remove chunks of inode " + std::to_string(inode) + ": " + ec.message());
    std::string idir = InodeDir(dir_, inode);
    return FsyncPath(idir.substr(0, idir.rfind('/')));
  }

 private:
  // A target must take O_DIRECT reads and writes of 4 KiB blocks; say so
  // plainly at startup instead of failing every later I/O.
  Status ProbeDirectIo() {
    std::string probe = dir_ + "/.direct-io-probe";
    int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0)
      return Status::FromErrno(errno, "target " + dir_ + " cannot open files with O_DIRECT (tmpfs or a network fs?)");
    AlignedBuffer block(kBlockSize);
    std::memset(block.data(), 0x5a, kBlockSize);
    size_t got = 0;
    Status st = PwriteFull(fd, block.data(), kBlockSize, 0);
    if (st.ok()) st = PreadFull(fd, block.data(), kBlockSize, 0, &got);
    ::close(fd);
    ::unlink(probe.c_str());
    if (!st.ok()) return Error(st.code(), "target " + dir_ + " fails O_DIRECT I/O: " + st.message());
    if (got != kBlockSize) return Error(proto::IO_ERROR, "target " + dir_ + " returned a short O_DIRECT read");
    return Status::OK();
  }

  io_uring_sqe* GetSqe() {  // requires sq_mu_
    io_uring_sqe* sqe;
    while (!(sqe = io_uring_get_sqe(&ring_))) io_uring_submit(&ring_);
    return sqe;
  }

  std::mutex& LockFor(uint64_t inode, uint64_t index) { return write_locks_[KeyHash()(Key{inode, index}) % 256]; }

  std::shared_ptr<ChunkFile> Cached(const Key& k) {
    std::lock_guard<std::mutex> l(cache_mu_);
    auto it = cache_.find(k);
    return it == cache_.end() ? nullptr : it->second;
  }
  void Cache(const Key& k, std::shared_ptr<ChunkFile> f) {
    std::lock_guard<std::mutex> l(cache_mu_);
    if (cache_.size() >= opts_.cache_entries && !cache_.count(k)) cache_.erase(cache_.begin());
    cache_[k] = std::move(f);
  }
  void EraseCached(const Key& k) {
    std::lock_guard<std::mutex> l(cache_mu_);
    cache_.erase(k);
  }

  // Sets up the op's buffer and the I/O it needs (none when it can finish now).
  Status Prepare(OpState* st, std::vector<std::tuple<int, uint8_t*, uint32_t, uint64_t, IoTag*>>* ios) {
    ReadOp* op = st->op;
    RETURN_IF_ERROR(CheckChunkSize(op->chunk_size));
    if (uint64_t{op->offset} + op->length > op->chunk_size) return Error(proto::INVALID_ARGUMENT, "read leaves the chunk");
    st->start = op->offset / kBlockSize * kBlockSize;
    st->end = RoundUp(uint64_t{op->offset} + op->length);
    op->buffer = AlignedBuffer(st->end - st->start);
    uint32_t hsize = ChunkHeaderSize(op->chunk_size);
    Key k{op->inode, op->index};
    st->file = Cached(k);
    if (st->file) {
      if (st->file->header.chunk_size != op->chunk_size)
        return Error(proto::INVALID_ARGUMENT, "chunk size does not match the stored chunk");
      uint32_t stored_end = std::min(st->end, RoundUp(st->file->header.data_len));
      if (stored_end > st->start) {
        ios->emplace_back(st->file->fd, op->buffer.data(), stored_end - st->start, hsize + st->start, &st->data_io);
        st->pending = 1;
      }
      return Status::OK();
    }
    st->mutations_at_open = mutations_.load();
    std::string path = ChunkFilePath(dir_, op->inode, op->index);
    st->miss_fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (st->miss_fd < 0) {
      if (errno == ENOENT) return Status::OK();  // never written: zeros
      return Status::FromErrno(errno, "open chunk");
    }
    st->header_buf = AlignedBuffer(hsize);
    ios->emplace_back(st->miss_fd, st->header_buf.data(), hsize, 0, &st->header_io);
    ios->emplace_back(st->miss_fd, op->buffer.data(), st->end - st->start, hsize + st->start, &st->data_io);
    st->pending = 2;
    return Status::OK();
  }

  void CompletionLoop() {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring_, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) {
        LOG_ERROR("io_uring_wait_cqe: {}", strerror(-rc));
        continue;
      }
      unsigned head, seen = 0;
      bool stop = false;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        auto* tag = static_cast<IoTag*>(io_uring_cqe_get_data(cqe));
        if (!tag) {
          stop = true;
          continue;
        }
        tag->res = cqe->res;
        if (--tag->st->pending == 0) Finish(tag->st);
      }
      io_uring_cq_advance(&ring_, seen);
      if (stop) return;
    }
  }

  // Verifies what was read and completes the op (and the batch with its last op).
  void Finish(OpState* st) {
    ReadOp* op = st->op;
    if (op->status.ok() && op->buffer.data()) op->status = Complete(st);
    if (op->status.ok()) {
      op->data = op->buffer.data() + (op->offset - st->start);
      stats_.reads++;
      stats_.read_bytes += op->length;
    } else {
      op->data = nullptr;
      if (op->status.code() == proto::CHECKSUM_MISMATCH) {
        stats_.checksum_errors++;
        LOG_ERROR("{}: inode {} chunk {}: {}", dir_, op->inode, op->index, op->status.message());
      } else if (op->status.code() == proto::IO_ERROR) {
        stats_.io_errors++;
      }
    }
    if (st->miss_fd >= 0 && !st->file) ::close(st->miss_fd);
    BatchState* batch = st->batch;
    delete st;
    if (--batch->remaining == 0) {
      batch->done();
      delete batch;
    }
  }

  Status Complete(OpState* st) {
    ReadOp* op = st->op;
    uint32_t want = st->end - st->start;
    if (!st->file && st->miss_fd < 0) {  // never written
      std::memset(op->buffer.data(), 0, want);
      return Status::OK();
    }
    if (!st->file) {
      if (st->header_io.res < 0) return Status::FromErrno(-st->header_io.res, "read chunk header");
      auto file = std::make_shared<ChunkFile>();
      RETURN_IF_ERROR(DecodeChunkHeader(st->header_buf.data(), st->header_io.res, op->chunk_size, &file->header));
      file->fd = st->miss_fd;
      st->file = file;  // now owns the descriptor
      if (mutations_.load() == st->mutations_at_open) Cache(Key{op->inode, op->index}, file);
    }
    const ChunkHeader& h = st->file->header;
    uint32_t stored_end = std::min(st->end, RoundUp(h.data_len));
    uint32_t stored = stored_end > st->start ? stored_end - st->start : 0;
    if (stored > 0) {
      if (st->data_io.res < 0) return Status::FromErrno(-st->data_io.res, "read chunk data");
      if (static_cast<uint32_t>(st->data_io.res) < stored) return Error(proto::IO_ERROR, "chunk file is short");
      RETURN_IF_ERROR(VerifyBlocks(h, st->start / kBlockSize, op->buffer.data(), stored));
    }
    std::memset(op->buffer.data() + stored, 0, want - stored);
    return Status::OK();
  }

  // Opens the chunk and parses its header synchronously (the write path).
  // nullptr when the chunk does not exist.
  Result<std::shared_ptr<ChunkFile>> LoadSync(uint64_t inode, uint64_t index, uint32_t chunk_size) {
    if (auto f = Cached(Key{inode, index})) return f;
    int fd = ::open(ChunkFilePath(dir_, inode, index).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::shared_ptr<ChunkFile>();
      return Status::FromErrno(errno, "open chunk");
    }
    auto f = std::make_shared<ChunkFile>();
    f->fd = fd;
    uint32_t hsize = ChunkHeaderSize(chunk_size);
    AlignedBuffer hb(hsize);
    size_t got = 0;
    RETURN_IF_ERROR(PreadFull(fd, hb.data(), hsize, 0, &got));
    RETURN_IF_ERROR(DecodeChunkHeader(hb.data(), got, chunk_size, &f->header));
    return f;
  }

  // Writes a new version of the chunk: the old data, then `length` bytes of
  // `data` at `offset`, cut to `cut_to` bytes when cut_to >= 0.
  Status Rewrite(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t offset, const uint8_t* data,
                 uint32_t length, int64_t cut_to) {
    std::lock_guard<std::mutex> l(LockFor(inode, index));
    mutations_++;
    Status st = RewriteLocked(inode, index, chunk_size, offset, data, length, cut_to);
    mutations_++;
    if (st.code() == proto::CHECKSUM_MISMATCH) stats_.checksum_errors++;
    return st;
  }

  Status RewriteLocked(uint64_t inode, uint64_t index, uint32_t chunk_size, uint32_t offset, const uint8_t* data,
                       uint32_t length, int64_t cut_to) {
    auto cur_or = LoadSync(inode, index, chunk_size);
    const bool overwrites_all = cut_to < 0 && offset == 0;
    if (!cur_or.ok() && !(cur_or.status().code() == proto::CHECKSUM_MISMATCH && overwrites_all)) return cur_or.status();
    std::shared_ptr<ChunkFile> cur = cur_or.ok() ? *cur_or : nullptr;
    if (!cur && cut_to >= 0) return Status::OK();  // nothing to cut
    uint32_t old_len = cur ? cur->header.data_len : 0;
    uint32_t new_len = cut_to >= 0 ? std::min<uint32_t>(old_len, static_cast<uint32_t>(cut_to))
                                   : std::max(old_len, offset + length);
    uint32_t hsize = ChunkHeaderSize(chunk_size);
    uint32_t alen = RoundUp(new_len);
    AlignedBuffer buf(hsize + alen);
    uint8_t* body = buf.data() + hsize;
    std::memset(body, 0, alen);
    // Keep the old bytes the write does not replace, checked before they are resealed.
    uint32_t keep = cut_to >= 0 ? RoundUp(new_len) : (offset == 0 && length >= old_len ? 0 : RoundUp(old_len));
    keep = std::min(keep, RoundUp(old_len));
    if (cur && keep > 0) {
      size_t got = 0;
      RETURN_IF_ERROR(PreadFull(cur->fd, body, keep, hsize, &got));
      if (got < keep) return Error(proto::IO_ERROR, "chunk file is short");
      RETURN_IF_ERROR(VerifyBlocks(cur->header, 0, body, keep));
    }
    if (new_len < alen) std::memset(body + new_len, 0, alen - new_len);
    if (length) std::memcpy(body + offset, data, length);
    ChunkHeader h;
    h.chunk_size = chunk_size;
    h.data_len = new_len;
    h.version = (cur ? cur->header.version : 0) + 1;
    h.crcs.assign(chunk_size / kBlockSize, 0);
    for (uint32_t b = 0; b < h.data_blocks(); ++b) h.crcs[b] = Crc32c(body + size_t{b} * kBlockSize, kBlockSize);
    EncodeChunkHeader(h, buf.data());

    std::string path = ChunkFilePath(dir_, inode, index);
    std::string idir = InodeDir(dir_, inode);
    if (::mkdir(idir.c_str(), 0755) == 0) {
      RETURN_IF_ERROR(FsyncPath(idir.substr(0, idir.rfind('/'))));
    } else if (errno == ENOENT) {
      std::error_code ec;
      std::filesystem::create_directories(idir, ec);
      if (ec) return Error(proto::IO_ERROR, "create " + idir + ": " + ec.message());
      RETURN_IF_ERROR(FsyncPath(dir_ + "/chunks"));
    } else if (errno != EEXIST) {
      return Status::FromErrno(errno, "mkdir " + idir);
    }
    std::string tmp = path + ".tmp";
    auto file = std::make_shared<ChunkFile>();
    file->fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (file->fd < 0) return Status::FromErrno(errno, "create " + tmp);
    RETURN_IF_ERROR(PwriteFull(file->fd, buf.data(), hsize + alen, 0));
    if (::fdatasync(file->fd) < 0) return Status::FromErrno(errno, "fdatasync " + tmp);
    if (::rename(tmp.c_str(), path.c_str()) < 0) return Status::FromErrno(errno, "rename " + tmp);
    RETURN_IF_ERROR(FsyncPath(idir));
    file->header = std::move(h);
    Cache(Key{inode, index}, std::move(file));
    return Status::OK();
  }

  std::string dir_;
  UringOptions opts_;
  io_uring ring_{};
  bool ring_ok_ = false;
  std::mutex sq_mu_;
  bool stopping_ = false;
  std::thread reaper_;
  std::mutex cache_mu_;
  std::unordered_map<Key, std::shared_ptr<ChunkFile>, KeyHash> cache_;
  std::atomic<uint64_t> mutations_{0};
  std::mutex write_locks_[256];
};

}  // namespace

Result<std::unique_ptr<ChunkStore>> OpenUringChunkStore(const std::string& dir, UringOptions options) {
  auto store = std::make_unique<UringChunkStore>(dir, options);
  RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<ChunkStore>(std::move(store));
}

}  // namespace shoal::storage
