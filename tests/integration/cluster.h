// LocalCluster: real shoal-meta, shoal-storage and shoal-fuse processes on
// loopback for integration tests, in a fresh directory with fresh ports.
// Everything it starts it stops (by PID) and unmounts in its destructor, also
// when a test fails; children die with the test process (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"

namespace shoal::testing {

// Polls `cond` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Small file helpers for tests that go through the mount.
std::string RandomString(size_t n, uint64_t seed);
bool WriteFile(const std::string& path, const std::string& data);  // false on any error
std::string ReadFile(const std::string& path);                     // "" when unreadable

class LocalCluster {
 public:
  static constexpr int kNodes = 3;

  LocalCluster();
  ~LocalCluster();

  // Starts meta, the storage nodes and (if `mount`) the FUSE mount; waits until
  // all of them serve. False (with a message in `error()`) when one does not.
  bool Start(bool mount = true);

  // The first start of meta passes --init (a new cluster), later ones do not.
  void StartMeta(const std::vector<std::string>& extra_args = {});
  void set_reclaim_delay_ms(int64_t ms) { reclaim_delay_ms_ = ms; }
  // node in 1..kNodes. The first start of a node passes --format, later ones
  // do not: a restart must find its stamped target, never format it.
  void StartStorage(int node, const std::vector<std::string>& extra_args = {});
  // The target of `node` (one each).
  static uint32_t target_of(int node) { return static_cast<uint32_t>(node * 100 + 1); }
  bool StartFuse(const std::vector<std::string>& extra_args = {});
  // Arguments every later StartFuse (and Start) adds, e.g. {"--uring", "on"}.
  void set_fuse_args(std::vector<std::string> args) { fuse_args_ = std::move(args); }
  // The command line StartFuse runs, for a test that runs shoal-fuse itself:
  // the binary, the cluster's flags, $SHOAL_TEST_FUSE_ARGS (split at spaces),
  // set_fuse_args, then `extra_args`.
  std::vector<std::string> FuseCommand(const std::vector<std::string>& extra_args = {}) const;
  void Kill(pid_t& pid, int sig);  // signals and reaps
  // Waits for `pid` to exit by itself and reaps it; its exit code, or -1
  // when it did not exit within `timeout` (it keeps running) or was killed.
  int WaitExit(pid_t& pid, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // What a process wrote so far: "meta", "storage1", ... , "fuse".
  std::string Log(const std::string& name) const;
  pid_t& meta_pid() { return meta_pid_; }
  pid_t& fuse_pid() { return fuse_pid_; }
  pid_t& storage_pid(int node) { return storage_pids_[node - 1]; }
  bool WaitNodesOnline(int n);

  const std::string& dir() const { return dir_; }
  const std::string& mount() const { return mount_; }
  const std::string& key_file() const { return key_file_; }
  std::string meta_address() const { return "127.0.0.1:" + std::to_string(meta_port_); }
  std::string storage_address(int node) const { return "127.0.0.1:" + std::to_string(storage_ports_[node - 1]); }
  std::string target_dir(uint32_t target_id) const;
  // Prometheus endpoints: node 0 is meta, 1..kNodes the storage nodes.
  std::string metrics_address(int node) const { return "127.0.0.1:" + std::to_string(metrics_ports_[node]); }
  // The value of one sample line (`name{labels}`) scraped from `node`, or -1.
  double Metric(int node, const std::string& sample) const;
  std::string cli() const;  // "shoal --config ..." ready for system()
  const std::string& error() const { return error_; }

  client::ClientOptions ClientOptions() const;
  std::unique_ptr<client::Client> NewClient() const;  // asserts success

 private:
  pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);

  std::string dir_, mount_, key_file_, key_;
  int meta_port_;
  std::vector<int> storage_ports_;
  std::vector<int> metrics_ports_;
  pid_t meta_pid_ = -1, fuse_pid_ = -1;
  int64_t reclaim_delay_ms_ = 0;
  bool meta_initialised_ = false;
  std::vector<pid_t> storage_pids_;
  std::vector<bool> storage_formatted_;
  std::string error_;
  std::vector<std::string> fuse_args_;
};

// A loopback port nobody listens on, outside the ephemeral range, never the
// same twice in one process.
int FreePort();

// Runs a shell command; returns its exit status and (optionally) stdout.
int Shell(const std::string& cmd, std::string* out = nullptr);

// Sets the fuse module's enable_uring parameter (FUSE over io_uring) for its
// lifetime and puts the old value back. available() is false on a kernel
// without it. Mounts negotiate it at FUSE_INIT, so only those made meanwhile
// that ask for it (shoal-fuse --uring) use it.
class FuseUringParameter {
 public:
  explicit FuseUringParameter(bool on);
  ~FuseUringParameter();
  bool available() const { return !old_.empty(); }

 private:
  std::string old_;
};

}  // namespace shoal::testing
