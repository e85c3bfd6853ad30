// MetaStore: the namespace (inodes, directory entries, layouts) on a Kv.
// One file per operation under meta/ops/.
//
// Contract:
// - Every mutation is one atomic KvBatch, durable when the call returns OK -
//   or, when the calling thread has a DeferredSync open (kv.h), applied and
//   durable at its Wait(): the mutex below is then not held across the sync.
// - Mutations are serialized by one mutex (their read-check-write must not
//   interleave); lookups, getattr and readdir do not take it.
// - Permission checks follow POSIX with the caller's uid/gid (root bypasses
//   read/write checks). Names: 1–255 bytes, no '/' or NUL, not "." or "..".
// - Errors: NOT_FOUND, ALREADY_EXISTS, NOT_DIRECTORY, IS_DIRECTORY, NOT_EMPTY,
//   NAME_TOO_LONG, INVALID_ARGUMENT, PERMISSION_DENIED (EACCES),
//   NOT_PERMITTED (EPERM), UNAVAILABLE (no chains to place a file on).
// Thread-safe.
#pragma once

#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "meta/kv.h"
#include "proto/meta.pb.h"

namespace shoal::meta {

constexpr uint64_t kRootIno = 1;
constexpr uint32_t kDefaultChunkSize = 1 << 20;
constexpr uint32_t kDefaultMaxStripe = 16;
constexpr uint32_t kMaxNameLen = 255;
constexpr uint32_t kMaxSymlinkLen = 4095;

using proto::Attr;
using proto::Caller;

struct DirEntryRow {
  std::string name;
  uint64_t ino;
  proto::FileType type;
  Attr attr;  // filled for readdir-plus
};

class MetaStore {
 public:
  // `chains` returns the ids of the chains new files may be placed on, sorted.
  // `clock` measures session leases.
  MetaStore(Kv* kv, std::function<std::vector<uint32_t>()> chains, const Clock* clock = RealClock());

  // Creates the root directory on first start; restores sessions (each gets
  // a fresh lease from now) and frees orphans nobody holds open.
  Status Init();

  Result<Attr> Lookup(const Caller& c, uint64_t parent, const std::string& name);
  Result<Attr> GetAttr(uint64_t ino);
  // With req.check_only(): every check, nothing changes; answers the stored
  // attributes. A size change checked so with a RequestId is remembered as a
  // truncate intent (durably, with the client's session): the commit that
  // names it (req.intent() = the check's request_id) applies the authorised
  // change without checking again, so a permission change after storage cut
  // the chunks cannot leave meta with the old size. An intent never
  // committed is applied when its client's session ends, if the file has not
  // changed since (its client may have cut the chunks and died).
  Result<Attr> SetAttr(const proto::SetAttrReq& req);
  // An existing `name` (without `exclusive`) is opened instead: the caller
  // needs the access `flags` ask for (O_ACCMODE, O_TRUNC) on that file.
  Result<Attr> Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode, bool exclusive,
                      uint32_t flags = O_WRONLY);
  // mknod(2): FIFO, CHAR_DEVICE, BLOCK_DEVICE, SOCKET or REGULAR. Device
  // nodes need root (NOT_PERMITTED otherwise, as Linux without CAP_MKNOD).
  Result<Attr> Mknod(const Caller& c, uint64_t parent, const std::string& name, proto::FileType type, uint32_t mode,
                     uint64_t rdev);
  Result<Attr> Mkdir(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode);
  Result<Attr> Symlink(const Caller& c, uint64_t parent, const std::string& name, const std::string& target);
  Result<Attr> Link(const Caller& c, uint64_t ino, uint64_t new_parent, const std::string& new_name);
  Status Unlink(const Caller& c, uint64_t parent, const std::string& name);
  Status Rmdir(const Caller& c, uint64_t parent, const std::string& name);
  Status Rename(const Caller& c, uint64_t parent, const std::string& name, uint64_t new_parent,
                const std::string& new_name, bool no_replace);
  Result<std::string> Readlink(uint64_t ino);
  // Entries named > start_after, at most `limit`; *eof when none remain.
  Result<std::vector<DirEntryRow>> ReadDir(const Caller& c, uint64_t ino, const std::string& start_after,
                                           uint32_t limit, bool plus, bool* eof);
  Result<Attr> Open(const Caller& c, uint64_t ino, uint32_t flags);
  // size = max(size, length); mtime = ctime = now. `writer` (when set, not
  // root) wrote data: set-id bits go as KillSuid says.
  Result<Attr> UpdateLength(uint64_t ino, uint64_t length, const Caller* writer = nullptr);
  Result<Attr> SetLayout(const Caller& c, uint64_t ino, uint32_t chunk_size, uint32_t stripe_width);

  // Extended attributes (ops/xattr.cc), with Linux's rules: user.* on regular
  // files and directories only (EPERM to set on others, ATTR_NOT_FOUND to read),
  // the file's read/write permission, sticky directories writable by their
  // owner only; trusted.* for root only (NOT_PERMITTED / ATTR_NOT_FOUND, hidden from
  // others' listings). Set and remove change ctime.
  // SetXattr: flags XATTR_CREATE / XATTR_REPLACE; ARG_TOO_BIG past 64 KiB;
  // NO_SPACE when the inode's names would not fit one 64 KiB listing.
  Status SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value, uint32_t flags);
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, const std::string& name);  // ATTR_NOT_FOUND when absent
  Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, const std::string& name);  // ATTR_NOT_FOUND when absent
  // Live inodes, kept as a counter in the same batches that create and free them.
  uint64_t CountInodes() const;
  // The number the next new inode gets: every inode that exists or ever
  // existed is below it. Takes the mutation lock.
  uint64_t NextInode();

  // The background reclaimer's queue: files whose last link is gone.
  struct Reclaim {
    uint64_t ino;
    proto::Layout layout;
    int64_t unlinked_at_ms;  // wall clock, for people; the grace period is the reclaimer's (on its Clock)
  };
  // At most `max` entries with an inode number above `after_ino`, in inode order.
  Result<std::vector<Reclaim>> PendingReclaims(size_t max, uint64_t after_ino = 0);
  // Drops the entry; not synced on its own (it becomes durable with the next
  // synced batch): an entry a host crash brings back is reclaimed again, and
  // removing chunks that are gone already is a no-op.
  Status FinishReclaim(uint64_t ino);

  // ---- Open files and sessions (ops/open_files.cc) ----
  // A client records each open in meta under (client_id, handle). Unlinking
  // (or renaming over) the last name of a regular file that has an open
  // record keeps its inode as an orphan (nlink 0): GetAttr, Open and I/O by
  // inode still work, lookup by name does not, and its chunks are queued for
  // reclaim only when the last record goes — by Release, by the client
  // closing its session, or by the session's lease passing (a dead client).
  // Keys in Cf::kOpenFiles: 'i' ino client handle (the record), 'c' client
  // ino handle (its index by client), 'z' ino (an orphan), 's' client ->
  // lease_ms (a session), 't' client request -> a truncate intent (SetAttr).
  //
  // Records an open of `ino`; the inode must exist (NOT_FOUND). Idempotent.
  // Opens the client's session if it has none.
  //
  // Records and releases are applied without a sync of their own: an open
  // costs no disk flush. They are in the KV's log (a crash of meta loses
  // none), and any later durable write makes them durable with it, so an
  // unlink that keeps an orphan for a record always finds that record after
  // a restart. Only a crash of the host can lose the last ones; a start on a
  // new host boot (set_host_boot_id) therefore begins a grace period of the
  // longest lease: clients re-record their opens (SessionReq.reopen, on
  // seeing a new instance_id()), and meanwhile the last link of any regular
  // file leaves an orphan. Orphans nobody re-recorded are freed when it ends.
  Status RecordOpen(uint64_t client_id, uint64_t ino, uint64_t handle);
  // Drops the record; an unknown record is OK. Frees an orphan at its last release.
  Status Release(uint64_t client_id, uint64_t ino, uint64_t handle);
  // The host's boot id (/proc/sys/kernel/random/boot_id); before Init. A start
  // under another boot id than the last one stored starts the grace period.
  void set_host_boot_id(std::string id) { host_boot_id_ = std::move(id); }
  bool InGrace() const { return grace_until_ms_.load() > clock_->NowMs(); }
  // Random per MetaStore: tells clients that meta restarted.
  uint64_t instance_id() const { return instance_id_; }
  // Opens or renews a session for `lease_ms` (clamped to 100 ms .. max) on the
  // clock; *known says whether it existed. Returns the granted lease.
  Result<uint32_t> RenewSession(uint64_t client_id, uint32_t lease_ms, bool* known);
  // Ends a session now: its open records and remembered results go.
  Status CloseSession(uint64_t client_id);
  // Ends every session whose lease has passed (and, once after a grace
  // period, frees the orphans nobody holds open); returns how many ended.
  Result<int> ExpireSessions();
  void set_max_lease_ms(uint32_t ms) { max_lease_ms_ = ms; }
  size_t CountSessions() const;
  uint64_t CountOpenRecords() const { return open_records_.load(); }
  uint64_t CountOrphans() const { return orphans_.load(); }

  // ---- Retries (ops/requests.cc) ----
  // A mutating call that carries a RequestId runs between BeginCall and
  // EndCall, with a CallScope on its thread. A call whose first attempt
  // committed is answered from its record instead of running again:
  // BeginCall returns the inode the first attempt produced or acted on (0
  // for unlink/rmdir/rename). The record is written in the same batch as the
  // operation (Commit), so it survives a meta restart exactly when the
  // operation does; a call that failed committed nothing and runs again. A
  // retry that arrives while the first attempt still runs waits for it.
  // Records are kept in Cf::kRequests (client request -> inode), dropped when
  // the client says it has its answer (RequestId.oldest_pending) or when its
  // session ends.
  Result<std::optional<uint64_t>> BeginCall(const proto::RequestId& rid);
  // Returns once every batch applied so far is durable (a retried call's
  // answer acknowledges its first attempt, which may still await its sync).
  Status SyncApplied() { return kv_->SyncThrough(kv_->LastApplied()); }
  void EndCall(const proto::RequestId& rid);
  // The thread's current mutating call (RAII). With open_handle set, a
  // Create that commits also records the open of the inode it answers, in the
  // same batch (create-and-open); opened() tells whether it did.
  class CallScope {
   public:
    CallScope(const proto::RequestId& rid, uint64_t open_handle = 0);
    ~CallScope();
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;
    bool opened() const { return opened_; }

   private:
    friend class MetaStore;
    const proto::RequestId& rid_;
    uint64_t open_handle_;
    bool opened_ = false;
    CallScope* prev_;
  };

  // What the thread's current request does to directories (RAII), for its
  // reply (proto::DirChanges): each directory it changed, with its
  // attributes as committed, and each it removed. Writing a directory inode
  // into a batch notes it; Commit keeps the notes when its write succeeds and
  // drops them when it fails, so only committed changes are reported (a
  // request that fails reports nothing). A retry answered from its first
  // attempt's record (BeginCall) is marked replayed. Handlers run a request
  // start to end on one thread.
  class DirChangeScope {
   public:
    DirChangeScope();
    ~DirChangeScope();
    DirChangeScope(const DirChangeScope&) = delete;
    DirChangeScope& operator=(const DirChangeScope&) = delete;
    bool empty() const { return changed_.empty() && removed_.empty() && !replayed_; }
    void Fill(proto::DirChanges* out) const;

   private:
    friend class MetaStore;
    std::vector<Attr> noted_changed_;  // in batches not yet committed
    std::vector<uint64_t> noted_removed_;
    std::map<uint64_t, Attr> changed_;  // committed; the last write wins
    std::set<uint64_t> removed_;
    bool replayed_ = false;
    DirChangeScope* prev_;
  };

  // Helpers shared by the operations (ops/common.cc).
  static std::string InodeKey(uint64_t ino);  // also: any 64-bit number, big-endian
  static uint64_t ReadBe64(std::string_view s);  // the first 8 bytes of `s`
  static std::string DirentKey(uint64_t parent, const std::string& name);
  static std::string DirentValue(uint64_t ino, proto::FileType type);
  static bool ParseDirent(std::string_view value, uint64_t* ino, proto::FileType* type);
  static Status CheckName(const std::string& name);
  static Status CheckAccess(const Attr& a, const Caller& c, int mask);  // mask of R_OK/W_OK/X_OK
  static bool InGroup(const Caller& c, uint32_t gid);
  // Drops S_ISUID, and S_ISGID when group-execute is set or a non-root caller
  // is outside the file's group (Linux should_remove_suid /
  // setattr_should_drop_sgid), from a non-directory. Root is spared unless
  // `by_root_too` (chown spares nobody).
  static void KillSuid(Attr& a, const Caller& c, bool by_root_too);
  // The access mask open(2) `flags` ask for (O_ACCMODE; O_TRUNC needs write).
  static int OpenAccess(uint32_t flags);
  static int64_t NowNs();

 private:
  Status InitNamespace();
  Result<Attr> LoadInode(uint64_t ino);
  Result<Attr> LoadDir(uint64_t ino);  // NOT_DIRECTORY when not a directory
  Result<uint64_t> FindEntry(uint64_t parent, const std::string& name);  // NOT_FOUND
  void PutInode(KvBatch& b, const Attr& a);
  // Deletes the inode's record in `b` (the caller drops the rest).
  void DeleteInode(KvBatch& b, const Attr& a);
  // DirChangeScope bookkeeping: a directory written or removed in a batch,
  // and the outcome of writing a batch.
  static void NoteDirWritten(const Attr& a);
  static void NoteDirRemoved(uint64_t ino);
  static void NoteBatchWritten(bool ok);
  static void NoteReplayed();
  // Stores `a` alone, durably, and returns it (attribute-only changes).
  Result<Attr> CommitInode(const Attr& a);
  Result<uint64_t> AllocateIno(KvBatch& b);
  // A new inode owned by the caller. With `dir` (its parent), a setgid
  // directory passes on its group (and, to subdirectories, S_ISGID), and a
  // non-root caller outside the new group loses a requested S_ISGID.
  Attr NewAttr(uint64_t ino, proto::FileType type, uint32_t mode, const Caller& c, const Attr* dir = nullptr);
  // Drops one link of `victim` (already loaded) into `b`; frees it at zero,
  // unless it is open somewhere: then it stays, an orphan (see RecordOpen).
  void DropLink(KvBatch& b, Attr& victim);
  // Deletes the inode in `b` and queues a regular file's chunks for reclaim.
  void FreeInode(KvBatch& b, const Attr& victim);
  // True when `ino` has an open record whose key is not in `ignore`
  // (records this batch deletes); true also when that cannot be read (an
  // orphan kept too long is freed at the next start, a freed open file is lost).
  bool HasOpenRecord(uint64_t ino, const std::set<std::string>& ignore = {});
  // Writes `b` (durably) with the current call's record (CallScope), if any:
  // the call answered `result_ino`. Every mutation commits through here.
  Status Commit(KvBatch& b, uint64_t result_ino);
  void PutOpenRecord(KvBatch& b, uint64_t client_id, uint64_t ino, uint64_t handle);
  // Puts the session key when the session is new to this meta. Requires write_mu_.
  void EnsureSession(KvBatch& b, uint64_t client_id);
  // Ends the session (only when its lease has passed, if asked); *ended says
  // whether it did. Requires nothing held.
  Status EndSession(uint64_t client_id, bool only_if_expired, bool* ended);
  Status DropSessionState(uint64_t client_id);  // requires write_mu_
  // Puts the client's uncommitted truncate intents into `b` (see SetAttr). Requires write_mu_.
  void ApplyIntents(KvBatch& b, uint64_t client_id);
  // Applies the changes `req` asks for to `a` (ctime included), checking the
  // caller's rights unless `authorised`. Requires write_mu_.
  Status ApplySetAttr(const proto::SetAttrReq& req, Attr& a, bool authorised);
  Status RestoreOpenFiles();
  Result<bool> DirIsEmpty(uint64_t ino);
  // Deletes every extended attribute of `ino` in `b` (the inode is being freed).
  void DropXattrs(KvBatch& b, uint64_t ino);
  // Linux's xattr_permission(): may `c` read (or write) `name` of `a`?
  static Status CheckXattrAccess(const Attr& a, const Caller& c, const std::string& name, bool write);
  // For a new entry: loads the parent directory, checks the caller may add
  // to it, and that `name` is free (ALREADY_EXISTS). Requires write_mu_.
  Result<Attr> PrepareNewEntry(const Caller& c, uint64_t parent, const std::string& name);
  // Puts `child`, its entry in `dir` and dir's new times into the batch.
  void AddEntry(KvBatch& b, Attr& dir, const std::string& name, const Attr& child);
  // Loads the entry `name` of `parent` for removal: the caller may remove
  // from the directory and the sticky bit allows it. Requires write_mu_.
  Result<std::pair<Attr, Attr>> PrepareRemoval(const Caller& c, uint64_t parent, const std::string& name);
  Status CheckSticky(const Attr& dir, const Attr& victim, const Caller& c);
  Result<proto::Layout> PlaceFile(const Attr& parent, uint64_t ino);

  Kv* kv_;
  std::function<std::vector<uint32_t>()> chains_;
  const Clock* clock_;
  std::mutex write_mu_;
  uint64_t next_ino_ = 0;  // guarded by write_mu_
  std::atomic<uint64_t> inode_count_{0};  // written under write_mu_
  void AdjustInodeCount(KvBatch& b, int64_t delta);  // requires write_mu_

  struct Session {
    int64_t expires_ms;
    uint32_t lease_ms;
  };
  mutable std::mutex session_mu_;  // taken after write_mu_, never before
  std::map<uint64_t, Session> sessions_;  // guarded by session_mu_
  uint32_t max_lease_ms_ = 300000;
  std::string host_boot_id_;
  const uint64_t instance_id_;
  std::atomic<int64_t> grace_until_ms_{0};  // 0: no grace period
  std::atomic<bool> grace_swept_{true};
  // Frees every orphan without an open record. Requires write_mu_.
  Status FreeUnheldOrphans();
  std::atomic<uint64_t> open_records_{0};  // written under write_mu_
  std::atomic<uint64_t> orphans_{0};       // written under write_mu_

  std::mutex call_mu_;
  std::condition_variable call_cv_;
  std::set<std::pair<uint64_t, uint64_t>> running_calls_;  // guarded by call_mu_
  std::map<uint64_t, uint64_t> forgotten_below_;  // client -> results below this id deleted; call_mu_
};

}  // namespace shoal::meta
