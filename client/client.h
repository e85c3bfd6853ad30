// libshoal: the Shoal client library.
//
// Metadata calls go to shoal-meta (blocking, with a deadline). Data calls split
// a byte range into chunk pieces and group them by storage server. The
// storage connections live on the client's event loops: reads from any thread
// are handed to the loop that owns their server's connection, and every read
// queued for one server in a loop iteration leaves in one request frame (at
// most `max_request_bytes` each), so batches grow with load; response bytes
// land directly in the caller's buffer.
// Transport errors and timeouts are retried with backoff, a bounded number of
// times, then the call fails (UNAVAILABLE / TIMEOUT, EIO at the FUSE boundary).
// Deadlines, back-off and cache expiry all run on ClientOptions::clock.
//
// Async calls complete through a callback that runs on an internal thread (a
// client event loop, or the retry timer) and must not block; the caller's
// buffer must stay valid until then.
// Identity: each Client draws a random 64-bit client id and holds a session
// at meta, renewed on a background thread (on ClientOptions::clock) and
// closed by the destructor. Every mutating metadata call carries (client id,
// request id), and a retry reuses the request id, so meta answers a retry
// after a lost reply with the first attempt's result.
// Thread-safe: one Client serves any number of threads.
#pragma once

#include <fcntl.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>
#include <string>
#include <vector>

#include "client/dir_attr_cache.h"
#include "client/write_lanes.h"
#include "common/loop/event_loop.h"
#include "common/rpc/channel_pool.h"
#include "common/rpc/loop_channel.h"
#include "common/status.h"
#include "proto/cluster.pb.h"
#include "proto/meta.pb.h"

namespace shoal::client {

using proto::Attr;
using proto::Caller;

struct ClientOptions {
  std::string meta_address = "127.0.0.1:9000";
  std::string cluster_id = "shoal";
  std::string cluster_key;  // raw bytes (see rpc::LoadClusterKey)
  int meta_timeout_ms = 10000;  // a metadata call, retries included
  // One attempt of a metadata call; a timed-out attempt is retried (with the
  // same request id, so it cannot run twice) while meta_timeout_ms lasts.
  // 0: one attempt takes all of meta_timeout_ms.
  int meta_attempt_timeout_ms = 0;
  // The client's session at meta: its open files stay open there while it
  // renews the lease every session_renew_ms (0: a third of the lease); when
  // the client dies they are released session_lease_ms after its last renewal.
  int session_lease_ms = 30000;
  int session_renew_ms = 0;
  int io_timeout_ms = 10000;    // per storage RPC attempt
  int io_attempts = 4;          // tries per storage request before failing
  uint32_t max_request_bytes = 8u << 20;
  int dentry_cache_ms = 1000;   // path lookups cached this long (0: off)
  // GetAttr of a directory this client just changed is answered from that
  // change's reply for this long (0: off; see dir_attr_cache.h). The FUSE
  // mount sets its attribute timeout.
  int dir_attr_cache_ms = 0;
  std::string transport = "auto";  // tcp, rdma or auto (see rpc/transport_select.h)
  int event_loops = 1;            // threads owning the storage connections
  // The loops' rings take 128-byte SQEs, so that FUSE's ring entries can be
  // served on them (see Loops()).
  bool wide_sqes = false;
  const Clock* clock = RealClock();  // deadlines, back-off, cache expiry (tests: a ManualClock)
};

// The caller's identity for permission checks (defaults to this process's).
Caller ProcessCaller();

using IoCallback = std::function<void(Result<size_t>)>;

struct BatchReadItem {
  uint64_t ino = 0;
  uint64_t offset = 0;
  size_t length = 0;
  uint8_t* buf = nullptr;
  // Results:
  Status status;
  size_t bytes = 0;  // less than length at end of file
};

class Client {
 public:
  // Loads the cluster table once; UNAVAILABLE / AUTH_FAILED when meta refuses.
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  // The same over a given transport (tests use the in-process one).
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options, rpc::Transport* transport);
  // Outstanding async calls complete (CANCELLED where they would retry) before it returns.
  ~Client();

  // ---- metadata (by inode) ----
  Result<Attr> Lookup(const Caller& c, uint64_t parent, const std::string& name);
  // From meta, or from the reply of this client's own change of a directory
  // (ClientOptions::dir_attr_cache_ms): then *fresh_for_ms (if given) says
  // how much longer that answer may be kept; otherwise it is left as it was.
  Result<Attr> GetAttr(uint64_t ino, int64_t* fresh_for_ms = nullptr);
  // A size change is authorised at meta (check_only), then cuts the chunks on
  // every target of the layout, then commits at meta: a refused change cuts
  // nothing, and the commit applies what the check authorised (a truncate
  // intent), so a permission change in between cannot refuse it after the cut.
  Result<Attr> SetAttr(proto::SetAttrReq req);
  // `flags` are the open flags: an existing file (without `exclusive`) is
  // opened when the caller has the access they ask for; O_TRUNC then
  // truncates it (as Open does). With `handle`: create-and-open in one call,
  // the file (new, or existing when not exclusive) opened under a new *handle
  // as Open does.
  Result<Attr> Create(const Caller& c, uint64_t parent, const std::string& name, uint32_t mode, bool exclusive,
                      uint32_t flags = O_WRONLY, uint64_t* handle = nullptr);
  // A FIFO, device node, socket or empty regular file (mknod(2)).
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
  // One page of entries after `start_after`.
  Result<proto::ReadDirRsp> ReadDir(const Caller& c, uint64_t ino, const std::string& start_after, uint32_t limit,
                                    bool plus);
  Result<proto::StatFsRsp> StatFs();
  // Checks the access `flags` ask for; O_TRUNC on a regular file truncates
  // it to 0 (cutting its chunks, as SetAttr does) and answers the new attributes.
  // With `handle`, the open is recorded at meta under a new *handle, which
  // keeps the file (readable and writable by inode) when its last name is
  // unlinked, until Release(ino, handle) or until this client's session ends.
  Result<Attr> Open(const Caller& c, uint64_t ino, uint32_t flags, uint64_t* handle = nullptr);
  // `writer`: the data was written by this non-root caller (see UpdateLengthReq).
  Result<Attr> UpdateLength(uint64_t ino, uint64_t length, const Caller* writer = nullptr);
  Status Release(uint64_t ino, uint64_t handle);
  uint64_t client_id() const { return client_id_; }
  Result<Attr> SetLayout(const Caller& c, uint64_t ino, uint32_t chunk_size, uint32_t stripe_width);
  Result<proto::ClusterTable> ClusterTable(bool refresh);
  // Extended attributes (meta/meta_store.h states the rules). Names in the
  // namespaces Shoal does not store are answered here without asking meta:
  // security.* reads find nothing (ATTR_NOT_FOUND) — the kernel asks for
  // security.capability on writes — and writes, like system.*, are NOT_SUPPORTED.
  Status SetXattr(const Caller& c, uint64_t ino, const std::string& name, const std::string& value, uint32_t flags);
  Result<std::string> GetXattr(const Caller& c, uint64_t ino, const std::string& name);
  Result<std::vector<std::string>> ListXattr(const Caller& c, uint64_t ino);
  Status RemoveXattr(const Caller& c, uint64_t ino, const std::string& name);

  // ---- paths ----
  // Resolves an absolute path ("/a/b"), without following a final symlink.
  Result<Attr> Resolve(const Caller& c, const std::string& path);
  // Splits "/a/b/c" into the parent's attr and "c".
  Result<std::pair<Attr, std::string>> ResolveParent(const Caller& c, const std::string& path);

  // ---- data ----
  // Reads up to `length` bytes at `offset`, clamped to the file's end:
  // file.size(), or `end` when the caller knows better (its own unreported
  // writes, its own truncate).
  void ReadAsync(const Attr& file, uint64_t offset, size_t length, uint8_t* buf, IoCallback done,
                 std::optional<uint64_t> end = std::nullopt);
  Result<size_t> Read(const Attr& file, uint64_t offset, size_t length, uint8_t* buf);
  // Starts many reads at once: their chunk pieces are grouped per server into
  // shared requests (as ReadBatch does), and each read completes through its
  // own callback, like ReadAsync. `file` is needed only during the call.
  struct AsyncRead {
    const Attr* file;
    uint64_t offset;
    size_t length;
    uint8_t* buf;
    IoCallback done;
  };
  void ReadAsyncMany(std::vector<AsyncRead> reads);
  // Many reads at once; each item gets its own status. Files are found by inode.
  Status ReadBatch(std::vector<BatchReadItem>& items);
  // Writes `length` bytes; durable on the storage targets when it completes.
  // The file's length in meta is updated by UpdateLength (on close/fsync).
  void WriteAsync(const Attr& file, uint64_t offset, size_t length, const uint8_t* data, IoCallback done);
  Result<size_t> Write(const Attr& file, uint64_t offset, size_t length, const uint8_t* data);

  // Where chunk `index` of the file lives: chain id, target id, node address.
  struct Placement {
    uint32_t chain_id = 0;
    uint32_t target_id = 0;
    uint32_t node_id = 0;
    std::string address;
  };
  Result<Placement> Place(const proto::Layout& layout, uint64_t index);
  // Where the chain's serving target is (the table refreshed when stale).
  Result<Placement> PlaceChain(uint32_t chain_id);

  // The event loops owning the storage connections; they live as long as
  // the Client. Work run there must not block.
  std::vector<loop::EventLoop*> Loops() const;

 private:
  Client(const ClientOptions& options, rpc::Transport* transport);
  template <typename Req, typename Rsp>
  Status MetaCall(proto::Method m, const Req& req, Rsp* rsp);
  // Stamps a mutating request with this client's id and a new request id,
  // pending until the returned guard goes (meta may then forget its result).
  class PendingRequest;
  PendingRequest Stamp(proto::RequestId* rid);
  // Renews (or opens) this client's session; true when meta still knew it.
  // Renews the lease; *known: meta had the session. When meta's instance
  // changed since the last renewal (it restarted), renews again with every
  // open handle of this client, which meta records again (see
  // MetaStore::RecordOpen: a restart after a host crash may have lost them).
  Result<bool> RenewSession();
  Result<proto::SessionRsp> SendSession(bool with_open_handles);
  void NoteOpen(uint64_t handle, uint64_t ino);
  void SessionLoop();
  Status RefreshTable();
  // Truncates `file` to 0 for an open with O_TRUNC (SetAttr's authorised cut).
  // When that fails the open fails, and its `handle` (if any) is released.
  Result<Attr> TruncateOnOpen(const Caller& c, const Attr& file, const uint64_t* handle);
  void ForgetDentry(uint64_t parent, const std::string& name);
  void NoteTableVersion(uint64_t v);

  struct Piece;
  struct Request;
  struct Op;
  struct ReadSpec {
    const Attr* file;
    uint64_t end;  // the file's end for this read
    uint64_t offset;
    size_t length;
    uint8_t* buf;
    IoCallback done;
  };
  // Starts many reads at once: their chunk pieces are grouped per server into
  // shared requests; each read completes through its own callback.
  void ReadMany(std::vector<ReadSpec> reads);
  // A storage server as the loops see it: its connection and the reads
  // queued for it in the current loop iteration.
  struct Server {
    loop::EventLoop* loop = nullptr;
    std::unique_ptr<rpc::LoopChannel> channel;
    std::vector<std::shared_ptr<Request>> queued;  // loop thread only
    bool flush_scheduled = false;                  // loop thread only
  };
  Status StartLoops();
  // The connection to `address` for the calling thread: a loop's own, on
  // that loop, so that a call made there (a FUSE request served on the
  // loop) crosses no thread; for any other thread, the server's home loop's.
  Server* ServerFor(const std::string& address);
  void QueueRead(Server* s, std::shared_ptr<Request> req);  // loop thread
  void FlushReads(Server* s);                               // loop thread
  void OnReadResponse(const std::vector<std::shared_ptr<Request>>& reqs, Status st, const std::string& msg,
                      uint32_t payload_len, uint64_t expected);
  void SendRead(std::shared_ptr<Request> req);
  void SendWrite(std::shared_ptr<Request> req);
  void Retry(std::shared_ptr<Request> req, Status why, bool is_write);
  // Counts a piece of its op as done (with `st`); the op's last piece finishes it.
  void CompletePiece(const Piece& piece, const Status& st);
  void CompletePieces(const Request& req, const Status& st);
  // The request is done for good: completes its pieces, frees its write lane.
  void FinishRequest(const Request& req, const Status& st, bool is_write);

  // Member order matters: members are destroyed in reverse order, and the
  // channels (declared last, destroyed first) fail their outstanding calls
  // from their destructor, running callbacks that use closing_mu_, closing_,
  // options_, timer_ and the tables. Everything a callback may touch is
  // therefore declared before channels_.
  ClientOptions options_;
  WriteLanes lanes_;  // callbacks release write lanes

  std::shared_mutex table_mu_;
  proto::ClusterTable table_;                      // guarded by table_mu_
  std::map<uint32_t, Placement> chain_placement_;  // guarded by table_mu_

  std::mutex attr_mu_;
  std::map<uint64_t, std::pair<Attr, int64_t>> attrs_;  // for ReadBatch: attr, expiry
  std::atomic<uint64_t> seen_table_version_{0};

  DirAttrCache dir_attrs_;

  std::mutex dentry_mu_;
  struct Dentry {
    Attr attr;
    int64_t expires_ms;
  };
  std::map<std::pair<uint64_t, std::string>, Dentry> dentries_;

  const uint64_t client_id_;
  std::atomic<uint64_t> next_request_id_{1};
  std::atomic<uint64_t> next_handle_{1};
  std::mutex open_mu_;
  std::map<uint64_t, uint64_t> open_handles_;  // handle -> ino; guarded by open_mu_
  std::atomic<uint64_t> meta_instance_{0};
  std::mutex pending_mu_;
  std::set<uint64_t> pending_requests_;  // guarded by pending_mu_
  std::mutex session_mu_;
  std::condition_variable session_cv_;
  bool session_stop_ = false;  // guarded by session_mu_
  std::thread session_thread_;

  class Timer;
  std::unique_ptr<Timer> timer_;
  // Set by the destructor (under closing_mu_ held exclusively) so that no retry
  // is scheduled on a timer that is going away; retries end with CANCELLED.
  std::shared_mutex closing_mu_;
  bool closing_ = false;

  rpc::Transport* transport_;
  // The loops outlive the storage connections on them (declared before).
  std::vector<std::unique_ptr<loop::EventLoop>> loops_;
  std::mutex servers_mu_;
  // A server's connections, one per loop, made when first used.
  struct ServerSet {
    size_t home = 0;  // the loop of callers that are not on one
    std::vector<std::unique_ptr<Server>> on_loop;
  };
  std::map<std::string, ServerSet> servers_;  // guarded by servers_mu_; entries never removed

  rpc::ChannelPool channels_;  // keep last but for meta_ (see above)
  rpc::RpcChannel* meta_;      // owned by channels_
};

}  // namespace shoal::client
