// posix: any local path (a local disk, the Shoal FUSE mount), read with
// io_uring and O_DIRECT, one ring per worker with `depth` entries. The one
// large file is opened once per worker; dataset files are opened when their
// read is submitted and closed when it completes (a dataset outnumbers the
// descriptors a process may hold).
#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "bench/shoal_bench/backend.h"
#include "bench/shoal_bench/pattern.h"
#include "common/aligned_buffer.h"

namespace shoal::bench {
namespace {

class PosixQueue : public Queue {
 public:
  PosixQueue(const std::vector<FileEntry>* files, uint32_t depth) : files_(files), slot_fd_(depth, -1) {}
  ~PosixQueue() override {
    // Exiting the ring waits for the kernel to finish its reads into our buffers.
    if (ring_ok_) io_uring_queue_exit(&ring_);
    for (int fd : slot_fd_)
      if (fd >= 0 && fd != shared_fd_) close(fd);
    if (shared_fd_ >= 0) close(shared_fd_);
  }

  Status Init() {
    int rc = io_uring_queue_init(static_cast<unsigned>(2 * slot_fd_.size()), &ring_, 0);
    if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init");
    ring_ok_ = true;
    if (files_->size() == 1) {
      shared_fd_ = open(files_->front().path.c_str(), O_RDONLY | O_DIRECT);
      if (shared_fd_ < 0) return Status::FromErrno(errno, "open " + files_->front().path + " (O_DIRECT)");
    }
    return Status::OK();
  }

  Status Submit(const ReadOp& op) override {
    int fd = shared_fd_;
    if (fd < 0) {
      const std::string& path = (*files_)[op.file].path;
      fd = open(path.c_str(), O_RDONLY | O_DIRECT);
      if (fd < 0) {
        Status st = Status::FromErrno(errno, "open " + path);
        NoteError(st.ToString());
        return st;
      }
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      if (fd != shared_fd_) close(fd);
      return Error(proto::OUT_OF_RANGE, "io_uring submission queue full");
    }
    slot_fd_[op.tag] = fd;
    io_uring_prep_read(sqe, fd, op.buf, static_cast<unsigned>(op.length), op.offset);
    io_uring_sqe_set_data64(sqe, op.tag);
    ++unsubmitted_;
    return Status::OK();
  }

  size_t Reap(ReadDone* out, size_t max, int timeout_ms) override {
    // Submissions are pushed to the kernel in one system call per reap.
    io_uring_cqe* cqe = nullptr;
    __kernel_timespec ts{timeout_ms / 1000, (timeout_ms % 1000) * 1000000ll};
    int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    if (rc >= 0 || rc == -ETIME) unsubmitted_ = 0;
    if (rc < 0 && rc != -ETIME && rc != -EINTR) NoteError(Status::FromErrno(-rc, "io_uring wait").ToString());
    size_t n = 0;
    unsigned head;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      if (n == max) break;
      uint32_t tag = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
      out[n].tag = tag;
      out[n].ok = cqe->res >= 0;
      out[n].bytes = cqe->res >= 0 ? static_cast<size_t>(cqe->res) : 0;
      if (cqe->res < 0) NoteError(Status::FromErrno(-cqe->res, "read").ToString());
      if (slot_fd_[tag] != shared_fd_) close(slot_fd_[tag]);
      slot_fd_[tag] = -1;
      ++n;
    }
    io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
    return n;
  }

 private:
  const std::vector<FileEntry>* files_;
  std::vector<int> slot_fd_;  // the descriptor each slot's read uses
  int shared_fd_ = -1;        // the one large file's
  io_uring ring_{};
  bool ring_ok_ = false;
  unsigned unsubmitted_ = 0;
};

class PosixBackend : public Backend {
 public:
  Result<std::vector<FileEntry>> List(const std::string& path, bool dataset) override {
    std::vector<FileEntry> files;
    struct stat st;
    if (!dataset) {
      if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
      if (!S_ISREG(st.st_mode)) return Error(proto::INVALID_ARGUMENT, path + " is not a regular file");
      files.push_back({path, static_cast<uint64_t>(st.st_size), 0});
      return files;
    }
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) return Status::FromErrno(errno, "opendir " + path);
    while (dirent* e = readdir(dir)) {
      uint64_t index;
      if (!DatasetFileIndex(e->d_name, &index)) continue;
      std::string p = path + "/" + e->d_name;
      if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      files.push_back({p, static_cast<uint64_t>(st.st_size), index});
    }
    closedir(dir);
    std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.index < b.index; });
    return files;
  }

  Result<std::unique_ptr<Queue>> NewQueue(const std::vector<FileEntry>* files, uint32_t depth, int, int) override {
    auto q = std::make_unique<PosixQueue>(files, depth);
    RETURN_IF_ERROR(q->Init());
    return std::unique_ptr<Queue>(std::move(q));
  }

  size_t alignment() const override { return kDirectIoAlign; }

  Status MakeDir(const std::string& path) override {
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return Error(proto::IO_ERROR, "mkdir " + path + ": " + ec.message());
    return Status::OK();
  }

  Status MakeFile(const std::string& path, uint64_t index, uint64_t size) override {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return Status::FromErrno(errno, "create " + path);
    AlignedBuffer buf(1 << 20);
    Status st;
    for (uint64_t off = 0; off < size && st.ok();) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      FillPattern(index, off, buf.data(), n);
      ssize_t w = pwrite(fd, buf.data(), n, static_cast<off_t>(off));
      if (w <= 0) st = Status::FromErrno(w < 0 ? errno : EIO, "write " + path);
      else off += static_cast<uint64_t>(w);
    }
    if (st.ok() && fsync(fd) != 0) st = Status::FromErrno(errno, "fsync " + path);
    close(fd);
    return st;
  }
};

}  // namespace

Result<std::unique_ptr<Backend>> NewPosixBackend() { return std::unique_ptr<Backend>(new PosixBackend()); }

}  // namespace shoal::bench
