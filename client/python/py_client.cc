#include "client/python/py_client.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>

namespace shoal::python {

namespace {

// /proc/mounts escapes blanks and backslashes as octal (\040).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> ShoalMounts() {
  std::vector<std::string> out;
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string dev, dir, type;
    if (f >> dev >> dir >> type && type == "fuse.shoal") out.push_back(Unescape(dir));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

// Counts completions of reads or writes issued together; callbacks run on the
// client's threads and only record.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 0;
  void Done() {
    std::lock_guard<std::mutex> l(mu);
    if (--left == 0) cv.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [this] { return left == 0; });
  }
};

size_t BlockBytes(const client::Attr& f) { return std::max<size_t>(f.layout().chunk_size(), 1 << 20); }

}  // namespace

Session::Session(std::unique_ptr<client::Client> c)
    : client_(std::move(c)), caller_(client::ProcessCaller()), mounts_(ShoalMounts()) {}

Result<std::unique_ptr<Session>> Session::Connect(const client::ClientOptions& options) {
  ASSIGN_OR_RETURN(auto c, client::Client::Connect(options));
  return std::unique_ptr<Session>(new Session(std::move(c)));
}

Result<std::string> Session::NamespacePath(const std::string& path) const {
  if (path.empty()) return Error(proto::INVALID_ARGUMENT, "empty path");
  std::string abs = path;
  if (path[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return Status::FromErrno(errno, "getcwd");
    abs = std::string(cwd) + "/" + path;
  }
  for (const auto& m : mounts_) {
    if (abs == m) return std::string("/");
    if (abs.size() > m.size() && abs.compare(0, m.size(), m) == 0 && abs[m.size()] == '/')
      return abs.substr(m.size());
  }
  if (path[0] != '/')
    return Error(proto::INVALID_ARGUMENT, path + ": a relative path must lie under a mounted Shoal file system");
  return abs;
}

Result<client::Attr> Session::Resolve(const std::string& path) {
  ASSIGN_OR_RETURN(std::string p, NamespacePath(path));
  return client_->Resolve(caller_, p);
}

Status Session::CheckReadable(const client::Attr& f, const std::string& path) const {
  if (f.type() == proto::DIRECTORY) return Error(proto::IS_DIRECTORY, path + " is a directory");
  if (f.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, path + " is not a regular file");
  if (caller_.uid() == 0) return Status::OK();
  uint32_t bit = 04;
  if (f.uid() == caller_.uid()) bit = 0400;
  else if (f.gid() == caller_.gid() ||
           std::find(caller_.groups().begin(), caller_.groups().end(), f.gid()) != caller_.groups().end())
    bit = 040;
  if ((f.mode() & bit) == 0) return Error(proto::PERMISSION_DENIED, path + ": permission denied");
  return Status::OK();
}

void Session::ReadMany(std::vector<Read>& reads) {
  auto latch = std::make_shared<Latch>();
  std::vector<client::Client::AsyncRead> async;
  async.reserve(reads.size());
  for (auto& r : reads) {
    if (r.file == nullptr) continue;
    if (r.length == 0) {
      r.status = Status::OK();
      r.bytes = 0;
      continue;
    }
    async.push_back({r.file, r.offset, r.length, r.buf, [latch, &r](Result<size_t> res) {
                       r.status = res.status();
                       r.bytes = res.ok() ? *res : 0;
                       latch->Done();
                     }});
  }
  if (async.empty()) return;
  latch->left = async.size();
  client_->ReadAsyncMany(std::move(async));
  latch->Wait();
}

Status Session::ReadWhole(const client::Attr& file, uint8_t* buf) {
  const size_t block = BlockBytes(file);
  std::vector<Read> reads;
  for (uint64_t off = 0; off < file.size(); off += block)
    reads.push_back({&file, off, static_cast<size_t>(std::min<uint64_t>(block, file.size() - off)), buf + off, Status(), 0});
  ReadMany(reads);
  for (const auto& r : reads) {
    if (!r.status.ok()) return r.status;
    if (r.bytes != r.length)
      return Error(proto::OUT_OF_RANGE, "read came back short at offset " + std::to_string(r.offset + r.bytes) +
                                            " (the file shrank while being read)");
  }
  return Status::OK();
}

Result<uint64_t> Session::WriteWhole(const std::string& path, const uint8_t* data, size_t length) {
  ASSIGN_OR_RETURN(std::string p, NamespacePath(path));
  ASSIGN_OR_RETURN(auto parent, client_->ResolveParent(caller_, p));
  ASSIGN_OR_RETURN(client::Attr created, client_->Create(caller_, parent.first.ino(), parent.second, 0644, false));
  if (created.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, path + " is not a regular file");
  // An existing file is emptied first, so that no byte of an older, longer
  // file survives past the new end (a new one has nothing to cut).
  client::Attr file = created;
  if (created.size() > 0) {
    proto::SetAttrReq truncate;
    *truncate.mutable_caller() = caller_;
    truncate.set_ino(created.ino());
    truncate.set_set_size(true);
    truncate.set_size(0);
    ASSIGN_OR_RETURN(file, client_->SetAttr(truncate));
  }

  // Blocks go out in parallel, at most `window` at once (one per chain of the
  // stripe, twice over), so the writes spread over every storage server.
  const size_t block = BlockBytes(file);
  const size_t window = std::max<size_t>(8, 2 * file.layout().stripe_width());
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t in_flight = 0;
    Status first_error;
  };
  auto st = std::make_shared<State>();
  uint64_t off = 0;
  for (;;) {
    std::unique_lock<std::mutex> l(st->mu);
    st->cv.wait(l, [&] { return st->in_flight < window || !st->first_error.ok(); });
    if (!st->first_error.ok() || off >= length) break;
    size_t n = std::min<uint64_t>(block, length - off);
    ++st->in_flight;
    l.unlock();
    client_->WriteAsync(file, off, n, data + off, [st, n, off, path](Result<size_t> r) {
      std::lock_guard<std::mutex> g(st->mu);
      --st->in_flight;
      if (st->first_error.ok() && !r.ok()) st->first_error = r.status();
      else if (st->first_error.ok() && *r != n)
        st->first_error = Error(proto::IO_ERROR, path + ": short write at offset " + std::to_string(off));
      st->cv.notify_all();
    });
    off += n;
  }
  {
    std::unique_lock<std::mutex> l(st->mu);
    st->cv.wait(l, [&] { return st->in_flight == 0; });
    if (!st->first_error.ok()) return st->first_error;
  }
  ASSIGN_OR_RETURN(client::Attr written, client_->UpdateLength(file.ino(), length));
  if (written.size() != length)
    return Error(proto::INTERNAL, path + " has length " + std::to_string(written.size()) + " after " +
                                      std::to_string(length) + " bytes were written (written concurrently?)");
  return length;
}

Result<std::vector<Session::Entry>> Session::List(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string p, NamespacePath(dir));
  return ListNamespace(p);
}

Result<std::vector<Session::Entry>> Session::ListNamespace(const std::string& p) {
  ASSIGN_OR_RETURN(client::Attr d, client_->Resolve(caller_, p));
  const std::string& dir = p;
  if (d.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, dir + " is not a directory");
  std::vector<Entry> out;
  std::string after;
  const std::string prefix = p == "/" ? "/" : p + "/";
  for (;;) {
    ASSIGN_OR_RETURN(auto page, client_->ReadDir(caller_, d.ino(), after, 1024, true));
    for (const auto& e : page.entries()) out.push_back({prefix + e.name(), e.attr()});
    if (page.eof() || page.entries().empty()) break;
    after = page.entries().rbegin()->name();
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return out;
}

Result<std::vector<Session::Entry>> Session::Walk(const std::string& root) {
  std::vector<Entry> files;
  ASSIGN_OR_RETURN(std::string p, NamespacePath(root));
  std::vector<std::string> dirs = {p};
  while (!dirs.empty()) {
    std::string d = std::move(dirs.back());
    dirs.pop_back();
    ASSIGN_OR_RETURN(auto entries, ListNamespace(d));
    for (auto& e : entries) {
      if (e.attr.type() == proto::DIRECTORY) dirs.push_back(e.path);
      else if (e.attr.type() == proto::REGULAR) files.push_back(std::move(e));
    }
  }
  std::sort(files.begin(), files.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return files;
}

}  // namespace shoal::python
