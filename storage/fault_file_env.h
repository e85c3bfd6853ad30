// A FileEnv for tests that fails the way disks fail (leveldb's fault env idea):
// it passes every call to a real FileEnv over the directory tree `root`, and
// on request injects errors, dies part-way, or cuts the power.
//
// Injected faults. Each is armed with `after` (that many more calls of its
// kind succeed first) and `times` (how often it then fires; kUntilCleared:
// every call until ClearFault). A fault that fires leaves the disk as the
// named failure would and returns a message naming the path and "(injected)":
//   kWriteNoSpace   File::PWrite: NO_SPACE, nothing written.
//   kWriteIoError   File::PWrite: IO_ERROR, nothing written.
//   kShortWrite     File::PWrite: the first half of the bytes (rounded down to
//                   4 KiB for an O_DIRECT file) is written for real, then
//                   IO_ERROR.
//   kSyncIoError    File::Sync: IO_ERROR; the data stays not durable.
//   kSyncDirIoError SyncDir: IO_ERROR; the names stay not durable.
//   kRenameIoError  Rename: IO_ERROR, nothing renamed.
//   kCreateNoSpace  Open with kCreateTrunc / kCreateExcl, and MakeDir, of a
//                   name that does not exist: NO_SPACE, nothing created. Only
//                   such creating calls count (a full disk still opens a file
//                   that exists, and still answers ALREADY_EXISTS).
// Every armed fault counts every call of its kind; when two are due on the
// same call, the first in enum order fires and the other stays due.
//
// Dying: DieAfter(k) lets k more mutating calls (kOpenCreate, kPWrite, kSync,
// kRename, kUnlink, kMakeDir, kRemoveDir, kSyncDir) through; from the next
// one on, every call fails with IO_ERROR (reads too; Exists, fd and Size still
// answer). With Crash() after it, a test cuts the power at any chosen point of
// an operation.
//
// The power-cut model (Crash()), the durability contract of file_env.h taken
// literally:
//  - Data: a file's bytes are those of its last successful File::Sync. A file
//    created through this env and never synced is empty. A file that existed
//    before this env first changed it keeps the bytes it had then (taken to be
//    durable). Snapshots are kept per file identity (st_dev, st_ino), so they
//    follow a file through renames and hard links.
//  - Names: every creation, MakeDir, Unlink, RemoveDir and Rename not yet
//    followed by a successful SyncDir of the directory holding the name is
//    undone, newest first. A rename is two name changes, each durable with its
//    own directory: the new name (in the destination) and the removal of the
//    old one (in the source). So a rename whose destination alone was synced
//    leaves the file under both names, as a journal-less file system may.
//    A name change inside a directory that no longer exists is lost with it
//    (directories are told apart by identity: one removed and made again
//    under the same name is another directory).
//    Unlinked and replaced files are hard-linked into a stash directory under
//    `root` (hidden from ListDir) so that an undo can put them back.
// After Crash() the tree on disk is what a disk would show after the cut
// within this model, and the env starts afresh over it: no faults, not dying,
// counters zero, everything on disk taken to be durable.
//
// Simplifications. Stricter than ext4/xfs (outcomes they would not produce):
// a SyncDir makes only its own directory's names durable (a journalling file
// system commits all pending ones at once); a rename is not atomic across two
// directories. Looser (a real disk has outcomes this model never produces): a
// crash keeps none of the writes after a file's last Sync (a disk may keep any
// subset of them, torn at sector boundaries), so a store that relied on
// unsynced bytes being absent would pass here; a failed Sync is not
// "poisoned" (a later Sync that succeeds makes the then-current bytes durable,
// where Linux may have dropped the failed pages). Not modelled: renames of
// directories (refused, NOT_SUPPORTED); paths outside `root` (passed through);
// reads of an fd through io_uring (they bypass the env and are never failed).
//
// Use: create `root`, build the env over it, give it to the store
// (UringOptions::env), destroy the store (every File closed), Crash(), reopen
// the store over the same directory with the same env.
//
// Thread-safety: every method may be called from any thread (one mutex; calls
// are serialised, so the undo log is in the order the disk saw them). Files
// must be destroyed before the env.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "storage/file_env.h"

namespace shoal::storage {

class FaultFileEnv : public FileEnv {
 public:
  enum class Fault {
    kWriteNoSpace,
    kWriteIoError,
    kShortWrite,
    kSyncIoError,
    kSyncDirIoError,
    kRenameIoError,
    kCreateNoSpace,
    kCount
  };
  // The kinds of call the env counts. kOpenCreate: Open with a create mode.
  enum class Call {
    kOpenRead,
    kOpenCreate,
    kPWrite,
    kPRead,
    kSync,
    kRename,
    kUnlink,
    kMakeDir,
    kRemoveDir,
    kSyncDir,
    kListDir,
    kCount
  };
  static constexpr uint64_t kUntilCleared = ~uint64_t{0};

  // `base`: a real env (RealFileEnv()); `root`: an existing directory.
  FaultFileEnv(FileEnv* base, std::string root);
  ~FaultFileEnv() override;

  void InjectFault(Fault fault, uint64_t after = 0, uint64_t times = kUntilCleared);
  void ClearFault(Fault fault);
  void ClearFaults();
  // How often `fault` fired since construction, the last Crash or ResetCounters.
  uint64_t fired(Fault fault) const;

  // From the (k+1)-th mutating call from now on, every call fails.
  void DieAfter(uint64_t k);
  bool dead() const;

  uint64_t calls(Call call) const;
  uint64_t mutating_calls() const;
  void ResetCounters();

  // Cuts the power (see above). Fails, changing nothing, while a File it
  // opened is still open.
  Status Crash();

  // FileEnv.
  Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode, bool direct) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Unlink(const std::string& path) override;
  Status MakeDir(const std::string& path) override;
  Status RemoveDir(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  // The whole tree under `root` becomes durable: every name change, and every
  // file's current bytes. Counted as a SyncDir (and failed by kSyncDirIoError).
  Status SyncFileSystem(const std::string& dir) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  bool Exists(const std::string& path) override;

 private:
  class FaultFile;
  using Identity = std::pair<dev_t, ino_t>;

  // One change of a name, undone at Crash unless its directory was synced
  // since: `path` goes back to what it held before (nothing, an empty
  // directory, or the file now linked at `stash`). Directories are told apart
  // by identity, not path: a directory removed and made again under the same
  // name is another directory, and syncing it says nothing of the first.
  struct NameChange {
    enum class Before { kAbsent, kEmptyDir, kFile };
    std::string dir;
    Identity dir_id;
    std::string path;
    Before before;
    std::string stash;
    // kEmptyDir: the removed directory, kept open so that its inode number is
    // not reused while a change inside it may still be undone.
    Identity removed_id{};
    int removed_fd = -1;
  };

  struct ArmedFault {
    bool armed = false;
    uint64_t after = 0;
    uint64_t times = 0;
  };

  // Counts a call; the error to fail it with when the machine is dying, or OK.
  // Callers of these private methods hold mu_.
  Status CountCall(Call call, const std::string& what);
  // Counts the call against every armed fault of `faults`; true (and the
  // fault that fired in `which`) when one fires.
  bool FaultDueAmong(std::initializer_list<Fault> faults, Fault* which);

  bool InRoot(const std::string& path) const;
  std::string Normal(const std::string& path) const;
  Result<std::string> StashLink(const std::string& path);
  void DropStash(const std::string& stash);
  // Records the durable bytes of `id` before its first change, read from `path`.
  void RememberDurable(const Identity& id, const std::string& path);
  NameChange Change(const std::string& path, NameChange::Before before, std::string stash = "");
  void Forget(NameChange& change);
  // `recreated`: directories made again by earlier undos (old -> new identity).
  void UndoNameChange(const NameChange& change, std::map<Identity, Identity>* recreated);
  void RestoreDurableData(const std::string& dir);

  FileEnv* const base_;
  const std::string root_;
  const std::string stash_dir_;

  mutable std::mutex mu_;
  std::array<ArmedFault, static_cast<size_t>(Fault::kCount)> faults_{};
  std::array<uint64_t, static_cast<size_t>(Fault::kCount)> fired_{};
  std::array<uint64_t, static_cast<size_t>(Call::kCount)> calls_{};
  uint64_t mutating_calls_ = 0;
  bool dying_ = false;
  uint64_t die_after_ = 0;  // mutating calls still allowed while dying_
  bool dead_ = false;
  size_t open_files_ = 0;
  uint64_t stash_seq_ = 0;
  std::map<Identity, std::string> durable_;  // file -> its bytes as of the last Sync
  std::vector<NameChange> undo_log_;         // oldest first
};

}  // namespace shoal::storage
