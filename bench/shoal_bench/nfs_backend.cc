// nfs: an NFS server through libnfs's asynchronous API. A run opens
// --nfs-conns contexts (one TCP connection and mount each) and deals them out
// to the workers: worker w drives the contexts c with c % workers == w from
// its own poll loop, so no context is ever touched by two threads (libnfs
// contexts are not thread-safe). Reads go round-robin over a worker's
// contexts. A context opens a file on its first read of it there and keeps
// the handle to the end (over v3 an open is a LOOKUP, over v4 an OPEN; a
// dataset's first pass pays one per file). Data arrives in libnfs's buffer
// and is copied into the caller's, as a kernel client's is.
#include <fcntl.h>
#include <nfsc/libnfs.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>

#include "bench/shoal_bench/backend.h"
#include "bench/shoal_bench/pattern.h"

namespace shoal::bench {
namespace {

constexpr int kNfsTimeoutMs = 30000;  // per call: a dead server fails reads, never hangs them

Status NfsError(nfs_context* nfs, int rc, const std::string& what) {
  const char* msg = nfs_get_error(nfs);
  return Error(proto::IO_ERROR, what + ": " + (msg && *msg ? msg : std::strerror(-rc)));
}

// A mounted context for `url`; nullptr with *st set on failure.
nfs_context* Mount(const std::string& url, Status* st) {
  nfs_context* nfs = nfs_init_context();
  if (nfs == nullptr) {
    *st = Error(proto::INTERNAL, "nfs_init_context failed");
    return nullptr;
  }
  nfs_set_timeout(nfs, kNfsTimeoutMs);
  // NFSv4 identifies a client by this name: contexts sharing one would
  // expire each other's state (NFS4ERR_EXPIRED).
  static std::atomic<int> seq{0};
  std::string name = "shoal-bench-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
  nfs4_set_client_name(nfs, name.c_str());
  nfs_url* u = nfs_parse_url_dir(nfs, url.c_str());
  if (u == nullptr) {
    *st = Error(proto::INVALID_ARGUMENT, "bad NFS URL '" + url + "': " + nfs_get_error(nfs));
    nfs_destroy_context(nfs);
    return nullptr;
  }
  int rc = nfs_mount(nfs, u->server, u->path);
  if (rc != 0) {
    *st = NfsError(nfs, rc, std::string("mount ") + u->server + ":" + u->path);
    nfs_destroy_url(u);
    nfs_destroy_context(nfs);
    return nullptr;
  }
  nfs_destroy_url(u);
  *st = Status::OK();
  return nfs;
}

class NfsQueue : public Queue {
 public:
  NfsQueue(const std::vector<FileEntry>* files, uint32_t depth, bool v4) : files_(files), slots_(depth), v4_(v4) {
    for (auto& s : slots_) s.queue = this;
    ready_.reserve(depth);
  }
  ~NfsQueue() override {
    // Destroying a context fails its outstanding calls through their
    // callbacks, which still find the slots and ready_ alive; closing_ stops
    // them from starting anything new.
    closing_ = true;
    for (Conn& c : conns_) {
      for (nfsfh* fh : c.handles)
        if (fh != nullptr && fh != kOpening) nfs_close(c.nfs, fh);
      nfs_destroy_context(c.nfs);
    }
  }

  Status AddConnection(const std::string& url) {
    Status st;
    nfs_context* nfs = Mount(url, &st);
    if (!nfs) return st;
    conns_.push_back({nfs, std::vector<nfsfh*>(files_->size(), nullptr), false, {}, {}});
    pfds_.push_back({});
    return Status::OK();
  }

  Status Submit(const ReadOp& op) override {
    Slot& s = slots_[op.tag];
    s.op = op;
    s.conn = static_cast<uint32_t>(next_conn_++ % conns_.size());
    Conn& c = conns_[s.conn];
    nfsfh*& fh = c.handles[op.file];
    int rc = 0;
    if (fh == kOpening) {
      c.awaiting_handle.push_back(&s);
    } else if (fh != nullptr) {
      rc = nfs_pread_async(c.nfs, fh, op.offset, op.length, &OnRead, &s);
    } else {
      fh = kOpening;
      rc = StartOpen(c, &s);
      if (rc != 0) fh = nullptr;
    }
    if (rc == 0) return Status::OK();
    Status st = NfsError(c.nfs, rc, "queue a read of " + (*files_)[op.file].path);
    NoteError(st.ToString());
    return st;
  }

  size_t Reap(ReadDone* out, size_t max, int timeout_ms) override {
    if (ready_.empty()) Service(timeout_ms);
    size_t n = std::min(max, ready_.size());
    std::copy(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(n), out);
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(n));
    return n;
  }

 private:
  struct Slot {  // one read in flight; libnfs's callbacks get it as their private data
    NfsQueue* queue = nullptr;
    ReadOp op;
    uint32_t conn = 0;
  };
  // A file's handle on a context: opened by the first read of it there, kept
  // until the end. NFSv4 OPENs are numbered per open owner, and libnfs 4.0
  // gives a context one owner but does not order them (two at once fail with
  // NFS4ERR_BAD_SEQID; a second OPEN of a file makes the first handle's
  // stateid old): so a file is opened once per context, and over v4 one OPEN
  // runs at a time per context. READs never wait for each other.
  struct Conn {
    nfs_context* nfs;
    std::vector<nfsfh*> handles;        // by file: nullptr, kOpening or the handle
    bool opening;                       // v4: an OPEN is out
    std::deque<Slot*> open_queue;       // v4: reads whose file's OPEN waits its turn
    std::vector<Slot*> awaiting_handle;  // reads whose file's OPEN is out or queued
  };
  static inline nfsfh* const kOpening = reinterpret_cast<nfsfh*>(1);

  int StartOpen(Conn& c, Slot* s) {
    if (v4_ && c.opening) {
      c.open_queue.push_back(s);
      return 0;
    }
    int rc = nfs_open_async(c.nfs, (*files_)[s->op.file].path.c_str(), O_RDONLY, &OnOpen, s);
    if (rc == 0) c.opening = true;
    return rc;
  }

  static void OnOpen(int err, nfs_context* nfs, void* data, void* priv) {
    auto* s = static_cast<Slot*>(priv);
    NfsQueue* q = s->queue;
    Conn& c = q->conns_[s->conn];
    c.opening = false;
    const uint32_t file = s->op.file;
    std::string error;
    if (err < 0) {
      c.handles[file] = nullptr;
      error = "open " + (*q->files_)[file].path + ": " + static_cast<const char*>(data);
    } else {
      c.handles[file] = static_cast<nfsfh*>(data);
    }
    // This read and every read that waited for the same file go on (or fail).
    q->Resume(c, s, file, error);
    for (size_t i = 0; i < c.awaiting_handle.size();) {
      Slot* w = c.awaiting_handle[i];
      if (w->op.file != file) {
        ++i;
        continue;
      }
      c.awaiting_handle[i] = c.awaiting_handle.back();
      c.awaiting_handle.pop_back();
      q->Resume(c, w, file, error);
    }
    while (!q->closing_ && !c.opening && !c.open_queue.empty()) {
      Slot* next = c.open_queue.front();
      c.open_queue.pop_front();
      if (q->StartOpen(c, next) != 0) {
        c.handles[next->op.file] = nullptr;
        q->Fail(*next, std::string("queue an open: ") + nfs_get_error(nfs));
      }
    }
  }
  void Resume(Conn& c, Slot* s, uint32_t file, const std::string& error) {
    if (!error.empty()) return Fail(*s, error);
    if (closing_) return Fail(*s, "cancelled");
    if (nfs_pread_async(c.nfs, c.handles[file], s->op.offset, s->op.length, &OnRead, s) != 0)
      Fail(*s, std::string("queue a read: ") + nfs_get_error(c.nfs));
  }
  static void OnRead(int err, nfs_context*, void* data, void* priv) {
    auto* s = static_cast<Slot*>(priv);
    if (err < 0) return s->queue->Fail(*s, "read: " + std::string(static_cast<const char*>(data)));
    size_t n = std::min(static_cast<size_t>(err), s->op.length);
    std::memcpy(s->op.buf, data, n);
    s->queue->ready_.push_back({s->op.tag, true, n});
  }

  void Fail(const Slot& s, const std::string& msg) {
    NoteError(msg);
    ready_.push_back({s.op.tag, false, 0});
  }

  // One poll over this worker's connections, serving each that is ready.
  void Service(int timeout_ms) {
    for (size_t i = 0; i < conns_.size(); ++i)
      pfds_[i] = {nfs_get_fd(conns_[i].nfs), static_cast<short>(nfs_which_events(conns_[i].nfs)), 0};
    int rc = poll(pfds_.data(), pfds_.size(), timeout_ms);
    if (rc <= 0) return;
    for (size_t i = 0; i < conns_.size(); ++i)
      if (pfds_[i].revents && nfs_service(conns_[i].nfs, pfds_[i].revents) < 0)
        NoteError(std::string("nfs connection: ") + nfs_get_error(conns_[i].nfs));
  }

  const std::vector<FileEntry>* files_;
  std::vector<Slot> slots_;  // by tag
  const bool v4_;
  bool closing_ = false;
  std::vector<Conn> conns_;
  std::vector<pollfd> pfds_;
  std::vector<ReadDone> ready_;  // completions not yet reaped
  uint64_t next_conn_ = 0;
};

class NfsBackend : public Backend {
 public:
  NfsBackend(std::string url, int conns, nfs_context* setup) : url_(std::move(url)), conns_(conns), nfs_(setup) {}
  ~NfsBackend() override { nfs_destroy_context(nfs_); }

  Result<std::vector<FileEntry>> List(const std::string& path, bool dataset) override {
    std::vector<FileEntry> files;
    nfs_stat_64 st{};
    int rc = nfs_stat64(nfs_, path.c_str(), &st);
    if (rc != 0) return NfsError(nfs_, rc, "stat " + path);
    if (!dataset) {
      if ((st.nfs_mode & S_IFMT) != S_IFREG) return Error(proto::INVALID_ARGUMENT, path + " is not a regular file");
      files.push_back({path, st.nfs_size, 0});
      return files;
    }
    nfsdir* dir = nullptr;
    rc = nfs_opendir(nfs_, path.c_str(), &dir);
    if (rc != 0) return NfsError(nfs_, rc, "opendir " + path);
    while (nfsdirent* e = nfs_readdir(nfs_, dir)) {
      uint64_t index;
      if (DatasetFileIndex(e->name, &index) && (e->mode & S_IFMT) == S_IFREG)
        files.push_back({path + "/" + e->name, e->size, index});
    }
    nfs_closedir(nfs_, dir);
    std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.index < b.index; });
    return files;
  }

  Result<std::unique_ptr<Queue>> NewQueue(const std::vector<FileEntry>* files, uint32_t depth, int worker,
                                          int workers) override {
    if (conns_ < workers)
      return Error(proto::INVALID_ARGUMENT, "--nfs-conns must be at least --threads (each worker drives its own)");
    auto q = std::make_unique<NfsQueue>(files, depth, url_.find("version=4") != std::string::npos);
    for (int c = worker; c < conns_; c += workers) RETURN_IF_ERROR(q->AddConnection(url_));
    return std::unique_ptr<Queue>(std::move(q));
  }

  Status MakeDir(const std::string& path) override {
    for (size_t end = path.find('/', 1);; end = path.find('/', end + 1)) {
      std::string prefix = path.substr(0, end);
      int rc = nfs_mkdir(nfs_, prefix.c_str());
      if (rc != 0 && rc != -EEXIST) {
        nfs_stat_64 st{};
        if (nfs_stat64(nfs_, prefix.c_str(), &st) != 0 || (st.nfs_mode & S_IFMT) != S_IFDIR)
          return NfsError(nfs_, rc, "mkdir " + prefix);
      }
      if (end == std::string::npos) return Status::OK();
    }
  }

  Status MakeFile(const std::string& path, uint64_t index, uint64_t size) override {
    nfs_unlink(nfs_, path.c_str());  // a fresh file, whatever was there
    nfsfh* fh = nullptr;
    int rc = nfs_creat(nfs_, path.c_str(), 0644, &fh);
    if (rc != 0) return NfsError(nfs_, rc, "create " + path);
    // Writes of the server's write size at most. libnfs 4.0 (Debian 12)
    // writes over NFSv3 only; over v4 every WRITE fails to encode ("Failed to
    // encode COMPOUND4args"): make the files in the exported directory with
    // `make posix` instead.
    std::vector<uint8_t> buf(std::clamp<uint64_t>(nfs_get_writemax(nfs_), 4096, 1 << 20));
    Status st;
    for (uint64_t off = 0; off < size && st.ok();) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      FillPattern(index, off, buf.data(), n);
      rc = nfs_pwrite(nfs_, fh, off, n, buf.data());
      if (rc <= 0) st = NfsError(nfs_, rc < 0 ? rc : -EIO, "write " + path);
      else off += static_cast<uint64_t>(rc);
    }
    if (st.ok() && (rc = nfs_fsync(nfs_, fh)) != 0) st = NfsError(nfs_, rc, "fsync " + path);
    nfs_close(nfs_, fh);
    return st;
  }

 private:
  std::string url_;
  int conns_;
  nfs_context* nfs_;  // for listing and make, on the main thread
};

}  // namespace

Result<std::unique_ptr<Backend>> NewNfsBackend(const std::string& url, int conns) {
  if (conns < 1) return Error(proto::INVALID_ARGUMENT, "--nfs-conns must be at least 1");
  Status st;
  nfs_context* nfs = Mount(url, &st);
  if (!nfs) return st;
  return std::unique_ptr<Backend>(new NfsBackend(url, conns, nfs));
}

}  // namespace shoal::bench
