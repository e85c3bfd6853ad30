#include "client/fuse/fuse_ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "client/fuse/fuse_uring.h"

namespace shoal::fuse {

void WrittenSizes::Extend(uint64_t ino, uint64_t end) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t& e = ends_[ino];
  e = std::max(e, end);
}

void WrittenSizes::Reported(uint64_t ino, uint64_t length) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = ends_.find(ino);
  if (it != ends_.end() && it->second <= length) ends_.erase(it);
}

void WrittenSizes::Truncated(uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  ends_.erase(ino);
}

uint64_t WrittenSizes::Get(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = ends_.find(ino);
  return it == ends_.end() ? 0 : it->second;
}

namespace {

FuseContext* Ctx(fuse_req_t req) { return static_cast<FuseContext*>(fuse_req_userdata(req)); }

proto::Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* fc = fuse_req_ctx(req);
  proto::Caller c;
  c.set_uid(fc->uid);
  c.set_gid(fc->gid);
  // Meta consults supplementary groups only for callers other than root, and
  // asking the kernel for them costs a read of /proc/<pid>/task/<tid>/status.
  if (fc->uid == 0) return c;
  gid_t groups[64];
  int n = fuse_req_getgroups(req, 64, groups);
  for (int i = 0; i < n && i < 64; ++i) c.add_groups(groups[i]);
  return c;
}

// The S_IF* bits of a file type.
mode_t TypeBits(proto::FileType t) {
  switch (t) {
    case proto::DIRECTORY: return S_IFDIR;
    case proto::SYMLINK: return S_IFLNK;
    case proto::FIFO: return S_IFIFO;
    case proto::CHAR_DEVICE: return S_IFCHR;
    case proto::BLOCK_DEVICE: return S_IFBLK;
    case proto::SOCKET: return S_IFSOCK;
    default: return S_IFREG;
  }
}

// The file type mknod(2) asks for, or FILE_TYPE_UNSPECIFIED.
proto::FileType TypeOf(mode_t mode) {
  switch (mode & S_IFMT) {
    case 0:  // mknod(2): a zero type means a regular file
    case S_IFREG: return proto::REGULAR;
    case S_IFIFO: return proto::FIFO;
    case S_IFCHR: return proto::CHAR_DEVICE;
    case S_IFBLK: return proto::BLOCK_DEVICE;
    case S_IFSOCK: return proto::SOCKET;
    default: return proto::FILE_TYPE_UNSPECIFIED;
  }
}

// `a` as this mount sees it: with the lengths of its own unreported writes.
struct stat ToStat(fuse_req_t req, const proto::Attr& attr) {
  proto::Attr a = attr;
  if (a.type() == proto::REGULAR) a.set_size(std::max<uint64_t>(a.size(), Ctx(req)->written.Get(a.ino())));
  struct stat st;
  std::memset(&st, 0, sizeof(st));
  st.st_ino = a.ino();
  st.st_mode = TypeBits(a.type()) | (a.mode() & 07777);
  st.st_rdev = static_cast<dev_t>(a.rdev());
  st.st_nlink = a.nlink();
  st.st_uid = a.uid();
  st.st_gid = a.gid();
  st.st_size = static_cast<off_t>(a.size());
  st.st_blocks = static_cast<blkcnt_t>((a.size() + 511) / 512);
  st.st_blksize = a.type() == proto::REGULAR ? a.layout().chunk_size() : 4096;
  st.st_atim = {static_cast<time_t>(a.atime_ns() / 1000000000), static_cast<long>(a.atime_ns() % 1000000000)};
  st.st_mtim = {static_cast<time_t>(a.mtime_ns() / 1000000000), static_cast<long>(a.mtime_ns() % 1000000000)};
  st.st_ctim = {static_cast<time_t>(a.ctime_ns() / 1000000000), static_cast<long>(a.ctime_ns() % 1000000000)};
  return st;
}

// `own`: this mount made the entry itself (MountOptions::own_change_timeout_s).
fuse_entry_param ToEntry(fuse_req_t req, const proto::Attr& a, bool own = false) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof(e));
  e.ino = a.ino();
  e.generation = 1;
  e.attr = ToStat(req, a);
  const MountOptions& o = Ctx(req)->options;
  e.attr_timeout = own ? std::max(o.own_change_timeout_s, o.attr_timeout_s) : o.attr_timeout_s;
  e.entry_timeout = own ? std::max(o.own_change_timeout_s, o.entry_timeout_s) : o.entry_timeout_s;
  return e;
}

void ReplyEntry(fuse_req_t req, const Result<proto::Attr>& r, bool own = false) {
  if (!r.ok()) return (void)fuse_reply_err(req, r.status().ToErrno());
  fuse_entry_param e = ToEntry(req, *r, own);
  fuse_reply_entry(req, &e);
}

void ReplyAttr(fuse_req_t req, const Result<proto::Attr>& r) {
  if (!r.ok()) return (void)fuse_reply_err(req, r.status().ToErrno());
  struct stat st = ToStat(req, *r);
  fuse_reply_attr(req, &st, Ctx(req)->options.attr_timeout_s);
}

void ReplyStatus(fuse_req_t req, const Status& st) { fuse_reply_err(req, st.ToErrno()); }

// An open file: its attributes from open (close-to-open) and how far this
// handle has written, reported to meta on flush/fsync/release.
struct FileHandle {
  FileHandle(const proto::Attr& a, uint64_t handle) : attr(a), open_handle(handle) {}
  const proto::Attr attr;  // from open; its size is `size` below
  const uint64_t open_handle;  // the open recorded at meta (released on release)
  std::atomic<uint64_t> size{0};  // meta's length as of open or this handle's truncate
  std::atomic<uint64_t> written_end{0};
  std::atomic<uint64_t> reported_end{0};
  // Written since the last report (mtime must move even when the length
  // does not), and by whom: a non-root writer clears setuid/setgid.
  std::atomic<bool> dirty{false};
  std::mutex writer_mu;
  std::optional<proto::Caller> writer;  // guarded by writer_mu
};

FileHandle* Handle(fuse_file_info* fi) { return reinterpret_cast<FileHandle*>(fi->fh); }

// Ends the handle's open at meta and frees it: the last release of an
// unlinked file lets meta reclaim it.
Status DropHandle(fuse_req_t req, FileHandle* h) {
  Status st = Ctx(req)->client->Release(h->attr.ino(), h->open_handle);
  delete h;
  return st;
}

// An open directory: the entries fetched so far, paged from meta on demand.
struct DirHandle {
  std::mutex mu;
  std::vector<proto::DirEntry> entries;  // index 0 and 1 are "." and ".."
  bool eof = false;
};

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, Ctx(req)->client->Lookup(CallerOf(req), parent, name));
}

void OpForget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  // An answer from this mount's own change is kept no longer than it has left.
  int64_t fresh_for_ms = -1;
  auto r = Ctx(req)->client->GetAttr(ino, &fresh_for_ms);
  if (!r.ok()) return (void)fuse_reply_err(req, r.status().ToErrno());
  struct stat st = ToStat(req, *r);
  double timeout = Ctx(req)->options.attr_timeout_s;
  if (fresh_for_ms >= 0) timeout = std::min(timeout, fresh_for_ms / 1000.0);
  fuse_reply_attr(req, &st, timeout);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  proto::SetAttrReq r;
  *r.mutable_caller() = CallerOf(req);
  r.set_ino(ino);
  if (to_set & FUSE_SET_ATTR_MODE) r.set_set_mode(true), r.set_mode(attr->st_mode & 07777);
  if (to_set & FUSE_SET_ATTR_UID) r.set_set_uid(true), r.set_uid(attr->st_uid);
  if (to_set & FUSE_SET_ATTR_GID) r.set_set_gid(true), r.set_gid(attr->st_gid);
  if (to_set & FUSE_SET_ATTR_SIZE) r.set_set_size(true), r.set_size(attr->st_size);
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
    r.set_set_atime(true);
    r.set_atime_ns((to_set & FUSE_SET_ATTR_ATIME_NOW) ? -1
                                                       : attr->st_atim.tv_sec * 1000000000ll + attr->st_atim.tv_nsec);
  }
  if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
    r.set_set_mtime(true);
    r.set_mtime_ns((to_set & FUSE_SET_ATTR_MTIME_NOW) ? -1
                                                       : attr->st_mtim.tv_sec * 1000000000ll + attr->st_mtim.tv_nsec);
  }
  // Only a truncate names a file handle; fi may also be an open directory's.
  FileHandle* h = (to_set & FUSE_SET_ATTR_SIZE) && fi && fi->fh ? Handle(fi) : nullptr;
  if (h) {
    h->written_end = std::min<uint64_t>(h->written_end, attr->st_size);
    h->reported_end = std::min<uint64_t>(h->reported_end, attr->st_size);
  }
  auto res = Ctx(req)->client->SetAttr(r);
  if (res.ok() && (to_set & FUSE_SET_ATTR_SIZE)) Ctx(req)->written.Truncated(ino);
  if (res.ok() && h) h->size = res->size();
  ReplyAttr(req, res);
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  auto t = Ctx(req)->client->Readlink(ino);
  if (!t.ok()) return ReplyStatus(req, t.status());
  fuse_reply_readlink(req, t->c_str());
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  proto::FileType type = TypeOf(mode);
  if (type == proto::FILE_TYPE_UNSPECIFIED) return (void)fuse_reply_err(req, EINVAL);
  ReplyEntry(req, Ctx(req)->client->Mknod(CallerOf(req), parent, name, type, mode & 07777 & ~fuse_req_ctx(req)->umask,
                                          rdev));
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  ReplyEntry(req, Ctx(req)->client->Mkdir(CallerOf(req), parent, name, mode & ~fuse_req_ctx(req)->umask), true);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, Ctx(req)->client->Unlink(CallerOf(req), parent, name));
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyStatus(req, Ctx(req)->client->Rmdir(CallerOf(req), parent, name));
}

void OpSymlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  ReplyEntry(req, Ctx(req)->client->Symlink(CallerOf(req), parent, name, target), true);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  if (flags & ~RENAME_NOREPLACE) return (void)fuse_reply_err(req, EINVAL);  // RENAME_EXCHANGE, WHITEOUT
  ReplyStatus(req, Ctx(req)->client->Rename(CallerOf(req), parent, name, newparent, newname,
                                            flags & RENAME_NOREPLACE));
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  ReplyEntry(req, Ctx(req)->client->Link(CallerOf(req), ino, newparent, newname), true);
}

void SetOpenFlags(fuse_req_t req, fuse_file_info* fi) {
  fi->direct_io = !Ctx(req)->options.page_cache || (fi->flags & O_DIRECT);
  fi->keep_cache = 0;
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  uint64_t handle = 0;
  auto a = Ctx(req)->client->Open(CallerOf(req), ino, fi->flags, &handle);  // O_TRUNC truncates (FUSE_CAP_ATOMIC_O_TRUNC)
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (fi->flags & O_TRUNC) Ctx(req)->written.Truncated(ino);
  auto* h = new FileHandle(*a, handle);
  h->size = h->written_end = h->reported_end = a->size();
  fi->fh = reinterpret_cast<uint64_t>(h);
  SetOpenFlags(req, fi);
  if (fuse_reply_open(req, fi) != 0) (void)DropHandle(req, h);  // the open was interrupted
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  uint64_t handle = 0;
  auto a = Ctx(req)->client->Create(CallerOf(req), parent, name, mode & ~fuse_req_ctx(req)->umask,
                                    fi->flags & O_EXCL, fi->flags, &handle);
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (fi->flags & O_TRUNC) Ctx(req)->written.Truncated(a->ino());
  auto* h = new FileHandle(*a, handle);
  h->size = h->written_end = h->reported_end = a->size();
  fi->fh = reinterpret_cast<uint64_t>(h);
  SetOpenFlags(req, fi);
  // One meta call creates (or, without O_EXCL, finds) and opens the file.
  fuse_entry_param e = ToEntry(req, *a, true);
  if (fuse_reply_create(req, &e, fi) != 0) (void)DropHandle(req, h);
}

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  FileHandle* h = Handle(fi);
  // This mount's own writes extend what may be read.
  uint64_t end = std::max({h->size.load(), h->written_end.load(), Ctx(req)->written.Get(h->attr.ino())});
  // A request that came through io_uring is answered from its ring entry's
  // buffer: the bytes land there once and the kernel copies them out.
  uint8_t* ring_buf = FuseUring::ReplyBuffer(size);
  auto* buf = ring_buf ? ring_buf : static_cast<uint8_t*>(malloc(size ? size : 1));
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  Ctx(req)->client->ReadAsync(
      h->attr, off, size, buf,
      [req, buf, owned = ring_buf == nullptr](Result<size_t> n) {
        if (n.ok()) fuse_reply_buf(req, reinterpret_cast<const char*>(buf), *n);
        else fuse_reply_err(req, n.status().ToErrno());
        if (owned) free(buf);
      },
      end);
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  FileHandle* h = Handle(fi);
  h->dirty = true;
  // Only a file with set-id bits (as of open) needs the writer's identity;
  // asking the kernel for its groups costs a /proc read.
  if (fuse_req_ctx(req)->uid != 0 && (h->attr.mode() & (S_ISUID | S_ISGID))) {
    std::lock_guard<std::mutex> l(h->writer_mu);
    if (!h->writer) h->writer = CallerOf(req);
  }
  // libfuse reuses `data` once we return; the copy lets the write finish asynchronously.
  auto* copy = static_cast<uint8_t*>(malloc(size ? size : 1));
  if (!copy) return (void)fuse_reply_err(req, ENOMEM);
  std::memcpy(copy, data, size);
  Ctx(req)->client->WriteAsync(h->attr, off, size, copy, [req, copy, h, off](Result<size_t> n) {
    free(copy);
    if (!n.ok()) return (void)fuse_reply_err(req, n.status().ToErrno());
    uint64_t end = off + *n, cur = h->written_end.load();
    while (end > cur && !h->written_end.compare_exchange_weak(cur, end)) {
    }
    Ctx(req)->written.Extend(h->attr.ino(), end);
    fuse_reply_write(req, *n);
  });
}

// Reports this handle's written length to meta (close-to-open consistency).
Status ReportLength(fuse_req_t req, FileHandle* h) {
  uint64_t end = h->written_end.load();
  if (end <= h->reported_end.load() && !h->dirty.load()) return Status::OK();
  h->dirty = false;  // before the call: a write racing with it marks the handle again
  std::optional<proto::Caller> writer;
  {
    std::lock_guard<std::mutex> l(h->writer_mu);
    writer.swap(h->writer);
  }
  auto a = Ctx(req)->client->UpdateLength(h->attr.ino(), end, writer ? &*writer : nullptr);
  if (!a.ok()) {
    h->dirty = true;
    std::lock_guard<std::mutex> l(h->writer_mu);
    if (!h->writer) h->writer = std::move(writer);
    return a.status();
  }
  h->reported_end = end;
  Ctx(req)->written.Reported(h->attr.ino(), a->size());
  return Status::OK();
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { ReplyStatus(req, ReportLength(req, Handle(fi))); }

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  FileHandle* h = Handle(fi);
  Status st = ReportLength(req, h);
  Status released = DropHandle(req, h);
  ReplyStatus(req, st.ok() ? released : st);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  // Data is durable on the targets when a write completes; what remains is the length.
  ReplyStatus(req, ReportLength(req, Handle(fi)));
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto a = Ctx(req)->client->Open(CallerOf(req), ino, O_RDONLY);
  if (!a.ok()) return ReplyStatus(req, a.status());
  if (a->type() != proto::DIRECTORY) return (void)fuse_reply_err(req, ENOTDIR);
  auto* d = new DirHandle;
  proto::DirEntry dot, dotdot;
  dot.set_name(".");
  dot.set_ino(ino);
  dot.set_type(proto::DIRECTORY);
  *dot.mutable_attr() = *a;
  dotdot.set_name("..");
  dotdot.set_ino(a->parent() ? a->parent() : ino);
  dotdot.set_type(proto::DIRECTORY);
  d->entries = {dot, dotdot};
  fi->fh = reinterpret_cast<uint64_t>(d);
  if (fuse_reply_open(req, fi) != 0) delete d;
}

// Fills `buf` with entries from index `off` on; fetches pages from meta as needed.
Status FillDir(fuse_req_t req, fuse_ino_t ino, DirHandle* d, off_t off, bool plus, std::vector<char>& buf,
               size_t* used) {
  std::lock_guard<std::mutex> l(d->mu);
  const size_t size = buf.size();
  for (size_t i = static_cast<size_t>(off);; ++i) {
    if (i >= d->entries.size()) {
      if (d->eof) break;
      std::string after = d->entries.size() > 2 ? d->entries.back().name() : "";
      auto page = Ctx(req)->client->ReadDir(CallerOf(req), ino, after, 1024, plus);
      if (!page.ok()) return *used > 0 ? Status::OK() : page.status();  // the error repeats on the next call
      for (auto& e : *page->mutable_entries()) d->entries.push_back(std::move(e));
      d->eof = page->eof();
      if (i >= d->entries.size()) break;
    }
    const proto::DirEntry& e = d->entries[i];
    size_t n;
    if (plus) {
      fuse_entry_param ep;
      if (e.has_attr() && e.attr().ino() != 0) {
        ep = ToEntry(req, e.attr());
      } else {
        std::memset(&ep, 0, sizeof(ep));
        ep.attr.st_ino = e.ino();
        ep.attr.st_mode = S_IFDIR;
      }
      if (e.name() == "." || e.name() == "..") ep.ino = 0;  // these take no lookup reference
      n = fuse_add_direntry_plus(req, buf.data() + *used, size - *used, e.name().c_str(), &ep, i + 1);
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof(st));
      st.st_ino = e.ino();
      st.st_mode = TypeBits(e.type());
      n = fuse_add_direntry(req, buf.data() + *used, size - *used, e.name().c_str(), &st, i + 1);
    }
    if (n > size - *used) break;
    *used += n;
  }
  return Status::OK();
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  std::vector<char> buf(size);
  size_t used = 0;
  // The reply comes after the handle's lock is released: once the kernel has
  // it, a RELEASEDIR may free the handle.
  Status st = FillDir(req, ino, reinterpret_cast<DirHandle*>(fi->fh), off, plus, buf, &used);
  if (!st.ok()) return ReplyStatus(req, st);
  fuse_reply_buf(req, buf.data(), used);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  auto s = Ctx(req)->client->StatFs();
  if (!s.ok()) return ReplyStatus(req, s.status());
  struct statvfs v;
  std::memset(&v, 0, sizeof(v));
  v.f_bsize = v.f_frsize = 4096;
  v.f_blocks = s->total_bytes() / 4096;
  v.f_bfree = v.f_bavail = s->free_bytes() / 4096;
  v.f_files = s->files() + 1000000000ull;
  v.f_ffree = v.f_favail = 1000000000ull;
  v.f_namemax = 255;
  fuse_reply_statfs(req, &v);
}

// Extended attributes. `size` 0 asks how large the answer is; a buffer too
// small for it is ERANGE, as the kernel's contract says.
void ReplySized(fuse_req_t req, const std::string& bytes, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, bytes.size());
  if (bytes.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, bytes.data(), bytes.size());
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  ReplyStatus(req, Ctx(req)->client->SetXattr(CallerOf(req), ino, name, std::string(value, size),
                                              static_cast<uint32_t>(flags)));
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto v = Ctx(req)->client->GetXattr(CallerOf(req), ino, name);
  if (!v.ok()) return ReplyStatus(req, v.status());
  ReplySized(req, *v, size);
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto names = Ctx(req)->client->ListXattr(CallerOf(req), ino);
  if (!names.ok()) return ReplyStatus(req, names.status());
  std::string list;
  for (const auto& n : *names) list.append(n).push_back('\0');
  ReplySized(req, list, size);
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyStatus(req, Ctx(req)->client->RemoveXattr(CallerOf(req), ino, name));
}

void OpInit(void* userdata, fuse_conn_info* conn) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  conn->max_read = ctx->options.max_read;
  conn->max_write = 1u << 20;
  conn->max_readahead = ctx->options.max_read;
  conn->max_background = 256;
  conn->congestion_threshold = 192;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  // open(O_TRUNC) reaches OpOpen with the flag (one call, no separate
  // SETATTR); Client::Open truncates. Without it the kernel sends a SETATTR.
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.statfs = OpStatfs;
  ops.create = OpCreate;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  return ops;
}();

}  // namespace

const fuse_lowlevel_ops* Operations() { return &kOps; }

}  // namespace shoal::fuse
