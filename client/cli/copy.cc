#include "client/cli/copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "client/cli/transfer.h"

namespace shoal::cli {

namespace {

// Closes a descriptor this code opened (never stdin/stdout).
struct LocalFd {
  int fd = -1;
  bool owned = false;
  ~LocalFd() {
    if (owned && fd >= 0) ::close(fd);
  }
};

TransferOptions ForFile(const client::Attr& file, const CopyOptions& o, const std::string& phase, uint64_t total) {
  TransferOptions t;
  t.block_bytes = o.block_bytes > 0 ? o.block_bytes : std::max<size_t>(file.layout().chunk_size(), 1 << 20);
  t.buffers = o.buffers > 0 ? o.buffers : std::max(4, 2 * static_cast<int>(file.layout().stripe_width()));
  if (o.progress) t.progress = [&o, phase, total](uint64_t done) { o.progress(phase, done, total); };
  return t;
}

// Reads the remote file back and compares it with the local one, which must
// have the same size.
Status Verify(client::Client& c, const client::Attr& file, int fd, const std::string& local,
              const std::string& remote, const CopyOptions& o) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(errno, "stat " + local);
  if (static_cast<uint64_t>(st.st_size) != file.size())
    return Error(proto::CHECKSUM_MISMATCH, "verify: " + local + " has " + std::to_string(st.st_size) + " bytes but " +
                                               remote + " has " + std::to_string(file.size()));
  ShoalFile readback(c, file);
  CompareSink compare(fd, local, remote);
  return Download(readback, file.size(), compare, ForFile(file, o, "verify", file.size()));
}

}  // namespace

Result<uint64_t> PutFile(client::Client& c, const client::Caller& caller, const std::string& local,
                         const std::string& remote, const CopyOptions& o) {
  LocalFd in;
  if (local == "-") {
    in.fd = STDIN_FILENO;
  } else {
    in.fd = ::open(local.c_str(), O_RDONLY | O_CLOEXEC);
    if (in.fd < 0) return Status::FromErrno(errno, local);
    in.owned = true;
  }
  struct stat st;
  if (::fstat(in.fd, &st) != 0) return Status::FromErrno(errno, local);
  if (S_ISDIR(st.st_mode)) return Error(proto::IS_DIRECTORY, local + " is a directory");
  if (o.verify && !S_ISREG(st.st_mode))
    return Error(proto::INVALID_ARGUMENT, "--verify reads the local file again: " + local + " is not a regular file");
  const uint64_t total = S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;

  ASSIGN_OR_RETURN(auto parent, c.ResolveParent(caller, remote));
  uint32_t mode = S_ISREG(st.st_mode) ? (st.st_mode & 0777) : 0644;
  ASSIGN_OR_RETURN(client::Attr created, c.Create(caller, parent.first.ino(), parent.second, mode, false));
  if (created.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, remote + " is not a regular file");
  // Empty it first (meta authorises before storage cuts anything): no byte of
  // an older, longer file can survive past the new end.
  proto::SetAttrReq truncate;
  *truncate.mutable_caller() = caller;
  truncate.set_ino(created.ino());
  truncate.set_set_size(true);
  truncate.set_size(0);
  ASSIGN_OR_RETURN(client::Attr empty, c.SetAttr(truncate));

  ShoalFile out(c, empty);
  ASSIGN_OR_RETURN(uint64_t n, Upload(in.fd, local, out, ForFile(empty, o, "put", total)));
  ASSIGN_OR_RETURN(client::Attr written, c.UpdateLength(empty.ino(), n));
  if (written.size() != n)
    return Error(proto::INTERNAL, remote + " has length " + std::to_string(written.size()) + " after " +
                                      std::to_string(n) + " bytes were put (written concurrently?)");
  if (o.verify) RETURN_IF_ERROR(Verify(c, written, in.fd, local, remote, o));
  return n;
}

Result<uint64_t> GetFile(client::Client& c, const client::Caller& caller, const std::string& remote,
                         const std::string& local, const CopyOptions& o) {
  if (o.verify && local == "-")
    return Error(proto::INVALID_ARGUMENT, "--verify reads the local file again: it cannot be standard output");
  ASSIGN_OR_RETURN(client::Attr found, c.Resolve(caller, remote));
  if (found.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, remote + " is not a regular file");
  // Meta checks read permission (storage servers check none).
  ASSIGN_OR_RETURN(client::Attr file, c.Open(caller, found.ino(), O_RDONLY));
  LocalFd out;
  if (local == "-") {
    out.fd = STDOUT_FILENO;
  } else {
    out.fd = ::open(local.c_str(), (o.verify ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out.fd < 0) return Status::FromErrno(errno, local);
    out.owned = true;
  }
  ShoalFile in(c, file);
  FdSink sink(out.fd, local == "-" ? "standard output" : local);
  RETURN_IF_ERROR(Download(in, file.size(), sink, ForFile(file, o, "get", file.size())));
  if (o.verify) RETURN_IF_ERROR(Verify(c, file, out.fd, local, remote, o));
  return file.size();
}

}  // namespace shoal::cli
