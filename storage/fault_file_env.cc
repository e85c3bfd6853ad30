#include "storage/fault_file_env.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

namespace shoal::storage {
namespace {

constexpr uint32_t kDirectAlignment = 4096;
using Fault = FaultFileEnv::Fault;
using Call = FaultFileEnv::Call;

bool IsMutating(Call call) {
  switch (call) {
    case Call::kOpenCreate:
    case Call::kPWrite:
    case Call::kSync:
    case Call::kRename:
    case Call::kUnlink:
    case Call::kMakeDir:
    case Call::kRemoveDir:
    case Call::kSyncDir:
      return true;
    default:
      return false;
  }
}

// The model's own bookkeeping must not fail quietly: a wrong model would make
// every crash test meaningless.
[[noreturn]] void ModelBroken(const std::string& what) {
  fprintf(stderr, "FaultFileEnv: %s: %s\n", what.c_str(), strerror(errno));
  std::abort();
}

std::string ReadAllOrDie(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) ModelBroken("open " + path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ModelBroken("read " + path);
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

void WriteAllOrDie(const std::string& path, const std::string& contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) ModelBroken("open " + path);
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t w = ::write(fd, contents.data() + done, contents.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ModelBroken("write " + path);
    done += static_cast<size_t>(w);
  }
  ::close(fd);  // no fsync: the model's disk is the tree as the test sees it
}

std::string Parent(const std::string& path) { return std::filesystem::path(path).parent_path().string(); }

std::string Injected(const std::string& what, const char* error) { return what + ": " + error + " (injected)"; }

}  // namespace

class FaultFileEnv::FaultFile : public File {
 public:
  FaultFile(FaultFileEnv* env, std::unique_ptr<File> base, std::string path, Identity id, bool direct)
      : env_(env), base_(std::move(base)), path_(std::move(path)), id_(id), direct_(direct) {}
  ~FaultFile() override {
    std::lock_guard<std::mutex> l(env_->mu_);
    env_->open_files_--;
  }

  int fd() const override { return base_->fd(); }

  Status PWrite(const void* data, size_t len, uint64_t offset) override {
    std::lock_guard<std::mutex> l(env_->mu_);
    const std::string what = "write " + path_;
    RETURN_IF_ERROR(env_->CountCall(Call::kPWrite, what));
    Fault which;
    if (env_->FaultDueAmong({Fault::kWriteNoSpace, Fault::kWriteIoError, Fault::kShortWrite}, &which)) {
      if (which == Fault::kWriteNoSpace) return Error(proto::NO_SPACE, Injected(what, "no space left on device"));
      if (which == Fault::kWriteIoError) return Error(proto::IO_ERROR, Injected(what, "input/output error"));
      size_t prefix = len / 2;
      if (direct_) prefix = prefix / kDirectAlignment * kDirectAlignment;
      if (prefix > 0) {
        env_->RememberDurable(id_, ProcPath());
        RETURN_IF_ERROR(base_->PWrite(data, prefix, offset));
      }
      return Error(proto::IO_ERROR, Injected(what, ("short write, " + std::to_string(prefix) + " of " +
                                                    std::to_string(len) + " bytes").c_str()));
    }
    env_->RememberDurable(id_, ProcPath());
    return base_->PWrite(data, len, offset);
  }

  Result<size_t> PRead(void* data, size_t len, uint64_t offset) override {
    std::lock_guard<std::mutex> l(env_->mu_);
    RETURN_IF_ERROR(env_->CountCall(Call::kPRead, "read " + path_));
    return base_->PRead(data, len, offset);
  }

  Status Sync() override {
    std::lock_guard<std::mutex> l(env_->mu_);
    const std::string what = "fdatasync " + path_;
    RETURN_IF_ERROR(env_->CountCall(Call::kSync, what));
    if (env_->FaultDueAmong({Fault::kSyncIoError}, nullptr))
      return Error(proto::IO_ERROR, Injected(what, "input/output error"));
    RETURN_IF_ERROR(base_->Sync());
    env_->durable_[id_] = ReadAllOrDie(ProcPath());
    return Status::OK();
  }

  Result<uint64_t> Size() override { return base_->Size(); }

 private:
  // Reads through a second, buffered descriptor of the same file: it works for
  // O_DIRECT files and for files renamed since they were opened.
  std::string ProcPath() const { return "/proc/self/fd/" + std::to_string(base_->fd()); }

  FaultFileEnv* const env_;
  std::unique_ptr<File> base_;
  const std::string path_;
  const Identity id_;
  const bool direct_;
};

FaultFileEnv::FaultFileEnv(FileEnv* base, std::string root)
    : base_(base), root_(Normal(root)), stash_dir_(root_ + "/.fault-env-stash") {
  if (::mkdir(stash_dir_.c_str(), 0755) < 0 && errno != EEXIST) ModelBroken("mkdir " + stash_dir_);
}

FaultFileEnv::~FaultFileEnv() {
  for (auto& c : undo_log_)
    if (c.removed_fd >= 0) ::close(c.removed_fd);
  std::error_code ec;
  std::filesystem::remove_all(stash_dir_, ec);
}

void FaultFileEnv::InjectFault(Fault fault, uint64_t after, uint64_t times) {
  std::lock_guard<std::mutex> l(mu_);
  faults_[static_cast<size_t>(fault)] = ArmedFault{times > 0, after, times};
}

void FaultFileEnv::ClearFault(Fault fault) {
  std::lock_guard<std::mutex> l(mu_);
  faults_[static_cast<size_t>(fault)] = ArmedFault{};
}

void FaultFileEnv::ClearFaults() {
  std::lock_guard<std::mutex> l(mu_);
  faults_.fill(ArmedFault{});
}

uint64_t FaultFileEnv::fired(Fault fault) const {
  std::lock_guard<std::mutex> l(mu_);
  return fired_[static_cast<size_t>(fault)];
}

void FaultFileEnv::DieAfter(uint64_t k) {
  std::lock_guard<std::mutex> l(mu_);
  dying_ = true;
  die_after_ = k;
}

bool FaultFileEnv::dead() const {
  std::lock_guard<std::mutex> l(mu_);
  return dead_;
}

uint64_t FaultFileEnv::calls(Call call) const {
  std::lock_guard<std::mutex> l(mu_);
  return calls_[static_cast<size_t>(call)];
}

uint64_t FaultFileEnv::mutating_calls() const {
  std::lock_guard<std::mutex> l(mu_);
  return mutating_calls_;
}

void FaultFileEnv::ResetCounters() {
  std::lock_guard<std::mutex> l(mu_);
  calls_.fill(0);
  fired_.fill(0);
  mutating_calls_ = 0;
}

Status FaultFileEnv::CountCall(Call call, const std::string& what) {
  calls_[static_cast<size_t>(call)]++;
  if (dead_) return Error(proto::IO_ERROR, Injected(what, "the machine is dying"));
  if (!IsMutating(call)) return Status::OK();
  mutating_calls_++;
  if (dying_) {
    if (die_after_ == 0) {
      dead_ = true;
      return Error(proto::IO_ERROR, Injected(what, "the machine is dying"));
    }
    die_after_--;
  }
  return Status::OK();
}

bool FaultFileEnv::FaultDueAmong(std::initializer_list<Fault> faults, Fault* which) {
  bool fired_one = false;
  for (Fault f : faults) {
    ArmedFault& a = faults_[static_cast<size_t>(f)];
    if (!a.armed) continue;
    if (a.after > 0) {
      a.after--;
      continue;
    }
    if (fired_one) continue;  // due, fires on a later call
    fired_one = true;
    if (which) *which = f;
    fired_[static_cast<size_t>(f)]++;
    if (a.times != kUntilCleared && --a.times == 0) a.armed = false;
  }
  return fired_one;
}

std::string FaultFileEnv::Normal(const std::string& path) const {
  std::string p = std::filesystem::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool FaultFileEnv::InRoot(const std::string& path) const {
  if (path.compare(0, root_.size() + 1, root_ + "/") != 0) return false;
  return path != stash_dir_ && path.compare(0, stash_dir_.size() + 1, stash_dir_ + "/") != 0;
}

Result<std::string> FaultFileEnv::StashLink(const std::string& path) {
  std::string stash = stash_dir_ + "/" + std::to_string(++stash_seq_);
  if (::link(path.c_str(), stash.c_str()) < 0) ModelBroken("link " + path + " to " + stash);
  return stash;
}

void FaultFileEnv::DropStash(const std::string& stash) {
  if (stash.empty()) return;
  struct stat st;
  if (::lstat(stash.c_str(), &st) < 0) ModelBroken("stat " + stash);
  // Its last name gone, the inode number may be reused by a new file.
  if (st.st_nlink == 1) durable_.erase(Identity{st.st_dev, st.st_ino});
  if (::unlink(stash.c_str()) < 0) ModelBroken("unlink " + stash);
}

void FaultFileEnv::RememberDurable(const Identity& id, const std::string& path) {
  if (durable_.count(id)) return;
  durable_[id] = ReadAllOrDie(path);
}

Result<std::unique_ptr<File>> FaultFileEnv::Open(const std::string& path, OpenMode mode, bool direct) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string p = Normal(path);
  const std::string what = "open " + p;
  const bool create = mode == OpenMode::kCreateTrunc || mode == OpenMode::kCreateExcl;
  RETURN_IF_ERROR(CountCall(create ? Call::kOpenCreate : Call::kOpenRead, what));
  struct stat before;
  const bool existed = ::lstat(p.c_str(), &before) == 0;
  if (create && !existed && FaultDueAmong({Fault::kCreateNoSpace}, nullptr))
    return Error(proto::NO_SPACE, Injected(what, "no space left on device"));
  if (existed && mode == OpenMode::kCreateTrunc && S_ISREG(before.st_mode))
    RememberDurable(Identity{before.st_dev, before.st_ino}, p);  // O_TRUNC changes the data
  ASSIGN_OR_RETURN(auto file, base_->Open(p, mode, direct));
  struct stat st;
  if (::fstat(file->fd(), &st) < 0) ModelBroken("fstat " + p);
  const Identity id{st.st_dev, st.st_ino};
  if (create && !existed) {
    durable_[id] = "";
    if (InRoot(p)) undo_log_.push_back(Change(p, NameChange::Before::kAbsent));
  }
  open_files_++;
  return std::unique_ptr<File>(new FaultFile(this, std::move(file), p, id, direct));
}

Status FaultFileEnv::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string f = Normal(from), t = Normal(to);
  const std::string what = "rename " + f + " to " + t;
  RETURN_IF_ERROR(CountCall(Call::kRename, what));
  if (FaultDueAmong({Fault::kRenameIoError}, nullptr)) return Error(proto::IO_ERROR, Injected(what, "input/output error"));
  struct stat fst, tst;
  if (!InRoot(f) || !InRoot(t) || f == t || ::lstat(f.c_str(), &fst) < 0) return base_->Rename(f, t);
  if (S_ISDIR(fst.st_mode)) return Error(proto::NOT_SUPPORTED, what + ": FaultFileEnv does not model renaming directories");
  const bool replaces = ::lstat(t.c_str(), &tst) == 0;
  if (replaces && !S_ISREG(tst.st_mode)) return base_->Rename(f, t);  // fails: a directory is in the way
  ASSIGN_OR_RETURN(std::string moved, StashLink(f));
  std::string replaced;
  if (replaces) {
    ASSIGN_OR_RETURN(replaced, StashLink(t));
  }
  if (Status st = base_->Rename(f, t); !st.ok()) {
    DropStash(moved);
    DropStash(replaced);
    return st;
  }
  undo_log_.push_back(Change(t, replaces ? NameChange::Before::kFile : NameChange::Before::kAbsent, replaced));
  undo_log_.push_back(Change(f, NameChange::Before::kFile, moved));
  return Status::OK();
}

Status FaultFileEnv::Unlink(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string p = Normal(path);
  RETURN_IF_ERROR(CountCall(Call::kUnlink, "unlink " + p));
  struct stat st;
  if (!InRoot(p) || ::lstat(p.c_str(), &st) < 0 || S_ISDIR(st.st_mode)) return base_->Unlink(p);
  ASSIGN_OR_RETURN(std::string stash, StashLink(p));
  if (Status s = base_->Unlink(p); !s.ok()) {
    DropStash(stash);
    return s;
  }
  undo_log_.push_back(Change(p, NameChange::Before::kFile, stash));
  return Status::OK();
}

Status FaultFileEnv::MakeDir(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string p = Normal(path);
  const std::string what = "mkdir " + p;
  RETURN_IF_ERROR(CountCall(Call::kMakeDir, what));
  if (!base_->Exists(p) && FaultDueAmong({Fault::kCreateNoSpace}, nullptr))
    return Error(proto::NO_SPACE, Injected(what, "no space left on device"));
  RETURN_IF_ERROR(base_->MakeDir(p));
  if (InRoot(p)) undo_log_.push_back(Change(p, NameChange::Before::kAbsent));
  return Status::OK();
}

Status FaultFileEnv::RemoveDir(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string p = Normal(path);
  RETURN_IF_ERROR(CountCall(Call::kRemoveDir, "rmdir " + p));
  int fd = InRoot(p) ? ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  struct stat st {};
  if (fd >= 0 && ::fstat(fd, &st) < 0) ModelBroken("fstat " + p);
  if (Status s = base_->RemoveDir(p); !s.ok()) {
    if (fd >= 0) ::close(fd);
    return s;
  }
  if (fd >= 0) {
    NameChange c = Change(p, NameChange::Before::kEmptyDir);
    c.removed_id = Identity{st.st_dev, st.st_ino};
    c.removed_fd = fd;
    undo_log_.push_back(std::move(c));
  }
  return Status::OK();
}

Status FaultFileEnv::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string d = Normal(dir);
  const std::string what = "fsync " + d;
  RETURN_IF_ERROR(CountCall(Call::kSyncDir, what));
  if (FaultDueAmong({Fault::kSyncDirIoError}, nullptr)) return Error(proto::IO_ERROR, Injected(what, "input/output error"));
  RETURN_IF_ERROR(base_->SyncDir(d));
  struct stat st;
  if (::lstat(d.c_str(), &st) < 0) ModelBroken("stat " + d);
  const Identity synced{st.st_dev, st.st_ino};
  // The changes in `d` are durable now. So is the removal of any directory
  // among them, which takes the changes still pending inside it along (and
  // inside directories removed from it, and so on).
  std::set<Identity> durable_dirs{synced};
  std::vector<bool> durable(undo_log_.size(), false);
  for (bool grew = true; grew;) {
    grew = false;
    for (size_t i = 0; i < undo_log_.size(); ++i) {
      if (durable[i] || !durable_dirs.count(undo_log_[i].dir_id)) continue;
      durable[i] = true;
      if (undo_log_[i].removed_fd >= 0) grew |= durable_dirs.insert(undo_log_[i].removed_id).second;
    }
  }
  std::vector<NameChange> still_undoable;
  for (size_t i = 0; i < undo_log_.size(); ++i) {
    if (durable[i])
      Forget(undo_log_[i]);
    else
      still_undoable.push_back(std::move(undo_log_[i]));
  }
  undo_log_ = std::move(still_undoable);
  return Status::OK();
}

Status FaultFileEnv::SyncFileSystem(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string what = "syncfs " + Normal(dir);
  RETURN_IF_ERROR(CountCall(Call::kSyncDir, what));
  if (FaultDueAmong({Fault::kSyncDirIoError}, nullptr)) return Error(proto::IO_ERROR, Injected(what, "input/output error"));
  RETURN_IF_ERROR(base_->SyncFileSystem(dir));
  for (NameChange& change : undo_log_) Forget(change);
  undo_log_.clear();
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string p = it->path().string();
    if (!InRoot(p)) {  // the stash
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && durable_.count(Identity{st.st_dev, st.st_ino}))
      durable_[Identity{st.st_dev, st.st_ino}] = ReadAllOrDie(p);
  }
  if (ec) ModelBroken("walk " + root_ + ": " + ec.message());
  return Status::OK();
}

Result<std::vector<std::string>> FaultFileEnv::ListDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  const std::string d = Normal(dir);
  RETURN_IF_ERROR(CountCall(Call::kListDir, "list " + d));
  ASSIGN_OR_RETURN(auto names, base_->ListDir(d));
  if (d == root_) std::erase(names, std::filesystem::path(stash_dir_).filename().string());
  return names;
}

bool FaultFileEnv::Exists(const std::string& path) { return base_->Exists(path); }

FaultFileEnv::NameChange FaultFileEnv::Change(const std::string& path, NameChange::Before before, std::string stash) {
  NameChange c;
  c.dir = Parent(path);
  struct stat st;
  if (::lstat(c.dir.c_str(), &st) < 0) ModelBroken("stat " + c.dir);
  c.dir_id = Identity{st.st_dev, st.st_ino};
  c.path = path;
  c.before = before;
  c.stash = std::move(stash);
  return c;
}

void FaultFileEnv::Forget(NameChange& c) {
  DropStash(c.stash);
  if (c.removed_fd >= 0) ::close(c.removed_fd);
  c.removed_fd = -1;
}

void FaultFileEnv::UndoNameChange(const NameChange& c, std::map<Identity, Identity>* recreated) {
  struct stat st;
  // The directory that held the name, as the undo so far has left it: gone (or
  // replaced by another of the same name), and the name is lost with it.
  Identity dir_now = c.dir_id;
  if (auto r = recreated->find(dir_now); r != recreated->end()) dir_now = r->second;
  if (::lstat(c.dir.c_str(), &st) < 0 || !S_ISDIR(st.st_mode) || Identity{st.st_dev, st.st_ino} != dir_now) return;
  if (::lstat(c.path.c_str(), &st) == 0) {
    std::error_code ec;
    if (S_ISDIR(st.st_mode))
      std::filesystem::remove_all(c.path, ec);
    else if (::unlink(c.path.c_str()) < 0)
      ModelBroken("unlink " + c.path);
    if (ec) ModelBroken("remove " + c.path + ": " + ec.message());
  }
  switch (c.before) {
    case NameChange::Before::kAbsent:
      break;
    case NameChange::Before::kEmptyDir:
      if (::mkdir(c.path.c_str(), 0755) < 0 || ::lstat(c.path.c_str(), &st) < 0) ModelBroken("mkdir " + c.path);
      (*recreated)[c.removed_id] = Identity{st.st_dev, st.st_ino};
      break;
    case NameChange::Before::kFile:
      if (::link(c.stash.c_str(), c.path.c_str()) < 0) ModelBroken("link " + c.stash + " to " + c.path);
      break;
  }
}

void FaultFileEnv::RestoreDurableData(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    const std::string p = it->path().string();
    if (p == stash_dir_) {
      it.disable_recursion_pending();
      continue;
    }
    struct stat st;
    if (::lstat(p.c_str(), &st) < 0 || !S_ISREG(st.st_mode)) continue;
    auto d = durable_.find(Identity{st.st_dev, st.st_ino});
    if (d != durable_.end() && ReadAllOrDie(p) != d->second) WriteAllOrDie(p, d->second);
  }
  if (ec) ModelBroken("walk " + dir + ": " + ec.message());
}

Status FaultFileEnv::Crash() {
  std::lock_guard<std::mutex> l(mu_);
  if (open_files_ > 0)
    return Error(proto::INVALID_ARGUMENT,
                 "Crash() with " + std::to_string(open_files_) + " files still open (destroy the store first)");
  std::map<Identity, Identity> recreated;
  for (auto c = undo_log_.rbegin(); c != undo_log_.rend(); ++c) UndoNameChange(*c, &recreated);
  for (auto& c : undo_log_)
    if (c.removed_fd >= 0) ::close(c.removed_fd);  // the stash goes as a whole below
  undo_log_.clear();
  RestoreDurableData(root_);
  durable_.clear();
  std::error_code ec;
  std::filesystem::remove_all(stash_dir_, ec);
  if (ec || ::mkdir(stash_dir_.c_str(), 0755) < 0) ModelBroken("renew " + stash_dir_);
  faults_.fill(ArmedFault{});
  fired_.fill(0);
  calls_.fill(0);
  mutating_calls_ = 0;
  dying_ = dead_ = false;
  die_after_ = 0;
  return Status::OK();
}

}  // namespace shoal::storage
