#include "storage/file_env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace shoal::storage {
namespace {

// NOT_FOUND and ALREADY_EXISTS are answers, not failures: map them so callers
// can branch on the code; everything else keeps FromErrno's mapping.
Status FromErrno(int err, const std::string& what) {
  if (err == ENOENT) return Error(proto::NOT_FOUND, what + ": no such file or directory");
  if (err == EEXIST) return Error(proto::ALREADY_EXISTS, what + ": exists");
  if (err == ENOTEMPTY) return Error(proto::NOT_EMPTY, what + ": not empty");
  if (err == ENOSPC || err == EDQUOT) return Error(proto::NO_SPACE, what + ": no space left on device");
  return Status::FromErrno(err, what);
}

class PosixFile : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }
  int fd() const override { return fd_; }

  Status PWrite(const void* data, size_t len, uint64_t offset) override {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t done = 0;
    while (done < len) {
      ssize_t w = ::pwrite(fd_, p + done, len - done, static_cast<off_t>(offset + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        return FromErrno(errno, "write " + path_);
      }
      if (w == 0) return Error(proto::IO_ERROR, "write " + path_ + ": no progress");
      done += static_cast<size_t>(w);
    }
    return Status::OK();
  }

  Result<size_t> PRead(void* data, size_t len, uint64_t offset) override {
    auto* p = static_cast<uint8_t*>(data);
    size_t got = 0;
    while (got < len) {
      ssize_t r = ::pread(fd_, p + got, len - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return FromErrno(errno, "read " + path_);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }

  Status Sync() override {
    if (::fdatasync(fd_) < 0) return FromErrno(errno, "fdatasync " + path_);
    return Status::OK();
  }

  Result<uint64_t> Size() override {
    struct stat st;
    if (::fstat(fd_, &st) < 0) return FromErrno(errno, "stat " + path_);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  int fd_;
  std::string path_;
};

class PosixEnv : public FileEnv {
 public:
  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode, bool direct) override {
    int flags = O_CLOEXEC | (direct ? O_DIRECT : 0);
    switch (mode) {
      // Chunk reads must not write: no access times (a few % of a 4 KiB read).
      case OpenMode::kRead: flags |= O_RDONLY | O_NOATIME; break;
      case OpenMode::kCreateTrunc: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
      case OpenMode::kCreateExcl: flags |= O_RDWR | O_CREAT | O_EXCL; break;
      case OpenMode::kReadWrite: flags |= O_RDWR; break;
    }
    int fd = ::open(path.c_str(), flags, 0644);
    // O_NOATIME needs the file's owner (or CAP_FOWNER): without it, plain.
    if (fd < 0 && errno == EPERM && (flags & O_NOATIME)) fd = ::open(path.c_str(), flags & ~O_NOATIME, 0644);
    if (fd < 0) return FromErrno(errno, "open " + path);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) < 0) return FromErrno(errno, "rename " + from + " to " + to);
    return Status::OK();
  }

  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) < 0) return FromErrno(errno, "unlink " + path);
    return Status::OK();
  }

  Status MakeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) < 0) return FromErrno(errno, "mkdir " + path);
    return Status::OK();
  }

  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) < 0) return FromErrno(errno == EEXIST ? ENOTEMPTY : errno, "rmdir " + path);
    return Status::OK();
  }

  Status SyncFileSystem(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return FromErrno(errno, "open " + dir);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc < 0) return FromErrno(err, "syncfs " + dir);
    return Status::OK();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return FromErrno(errno, "open " + dir);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc < 0) return FromErrno(err, "fsync " + dir);
    return Status::OK();
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return FromErrno(errno, "list " + dir);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int err = errno;
    ::closedir(d);
    if (err) return FromErrno(err, "list " + dir);
    return names;
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }
};

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

FileEnv* RealFileEnv() {
  static auto* env = new PosixEnv;
  return env;
}

Status WriteFileDurably(FileEnv* env, const std::string& path, const std::string& contents) {
  std::string tmp = path + ".tmp";
  {
    ASSIGN_OR_RETURN(auto f, env->Open(tmp, OpenMode::kCreateTrunc, /*direct=*/false));
    RETURN_IF_ERROR(f->PWrite(contents.data(), contents.size(), 0));
    RETURN_IF_ERROR(f->Sync());
  }
  RETURN_IF_ERROR(env->Rename(tmp, path));
  return env->SyncDir(Parent(path));
}

Result<std::string> ReadWholeFile(FileEnv* env, const std::string& path) {
  ASSIGN_OR_RETURN(auto f, env->Open(path, OpenMode::kRead, /*direct=*/false));
  ASSIGN_OR_RETURN(uint64_t size, f->Size());
  if (size > (64u << 20)) return Error(proto::TOO_LARGE, path + " is larger than 64 MiB");
  std::string out(size, '\0');
  ASSIGN_OR_RETURN(size_t got, f->PRead(out.data(), out.size(), 0));
  out.resize(got);
  return out;
}

Status MakeDirsDurably(FileEnv* env, const std::string& path) {
  if (path.empty() || path == "/" || path == "." || env->Exists(path)) return Status::OK();
  std::string parent = Parent(path);
  RETURN_IF_ERROR(MakeDirsDurably(env, parent));
  Status st = env->MakeDir(path);
  if (st.code() == proto::ALREADY_EXISTS) return Status::OK();
  RETURN_IF_ERROR(st);
  return env->SyncDir(parent);
}

}  // namespace shoal::storage
