#include "tests/integration/cluster.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <random>
#include <set>
#include <thread>

#include "common/rpc/handshake.h"
#include "tests/common/eventually.h"

namespace shoal::testing {

namespace {
bool Bindable(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  close(fd);
  return ok;
}
}  // namespace

// Below the kernel's ephemeral range (32768+), so that no outgoing connection
// can take a port between picking it and a server binding it.
int FreePort() {
  static std::mt19937 rng(std::random_device{}());
  static std::set<int> handed_out;
  for (;;) {
    int port = 10000 + static_cast<int>(rng() % 20000);
    if (!handed_out.count(port) && Bindable(port)) {
      handed_out.insert(port);
      return port;
    }
  }
}

namespace {

bool Mounted(const std::string& mnt) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line))
    if (line.find(" " + mnt + " fuse.shoal ") != std::string::npos) return true;
  return false;
}
}  // namespace

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  return testutil::Eventually(cond, timeout);
}

std::string RandomString(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), data.size());
  return out.good();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int Shell(const std::string& cmd, std::string* out) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
    if (out) out->append(buf, n);
  int rc = pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

LocalCluster::LocalCluster() {
  static int seq = 0;
  dir_ = "/tmp/shoal-it-" + std::to_string(getpid()) + "-" + std::to_string(seq++);
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_ + "/mnt");
  mount_ = dir_ + "/mnt";
  key_file_ = dir_ + "/cluster.key";
  std::mt19937_64 rng(std::random_device{}());
  char hex[65];
  for (int i = 0; i < 32; ++i) snprintf(hex + 2 * i, 3, "%02x", static_cast<unsigned>(rng() & 0xff));
  std::ofstream(key_file_) << hex << "\n";
  meta_port_ = FreePort();
  for (int i = 0; i < kNodes; ++i) storage_ports_.push_back(FreePort());
  for (int i = 0; i <= kNodes; ++i) metrics_ports_.push_back(FreePort());
  storage_pids_.assign(kNodes, -1);
  storage_formatted_.assign(kNodes, false);
}

LocalCluster::~LocalCluster() {
  if (Mounted(mount_)) Shell("fusermount3 -u " + mount_ + " 2>/dev/null || umount -l " + mount_);
  Kill(fuse_pid_, SIGTERM);
  for (auto& p : storage_pids_) Kill(p, SIGTERM);
  Kill(meta_pid_, SIGTERM);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

pid_t LocalCluster::Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    FILE* f = fopen((dir_ + "/" + log + ".log").c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

void LocalCluster::Kill(pid_t& pid, int sig) {
  if (pid <= 0) return;
  // A pidfd turns readable when the process exits: wait on it with a deadline,
  // and kill a process that ignores SIGTERM for 15 s.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  kill(pid, sig);
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    if (poll(&p, 1, 15000) == 0) kill(pid, SIGKILL);
    close(pidfd);
  }
  int status;
  waitpid(pid, &status, 0);
  pid = -1;
}

std::string LocalCluster::target_dir(uint32_t target_id) const { return dir_ + "/target" + std::to_string(target_id); }

std::string LocalCluster::cli() const {
  return std::string(SHOAL_BIN_DIR) + "/client/cli/shoal --meta-address " + meta_address() +
         " --cluster-id test --cluster-key-file " + key_file_;
}

void LocalCluster::StartMeta(const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {std::string(SHOAL_BIN_DIR) + "/meta/shoal-meta", "--listen", meta_address(),
                                   "--data-dir", dir_ + "/meta", "--cluster-id", "test", "--cluster-key-file",
                                   key_file_, "--heartbeat-timeout-ms", "3000", "--reclaim-interval-ms", "200",
                                   "--reclaim-delay-ms", std::to_string(reclaim_delay_ms_), "--metrics-listen",
                                   metrics_address(0)};
  if (!meta_initialised_) args.push_back("--init");
  meta_initialised_ = true;
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  meta_pid_ = Spawn(args, "meta");
}

void LocalCluster::StartStorage(int node, const std::vector<std::string>& extra_args) {
  uint32_t target = target_of(node);
  std::vector<std::string> args = {std::string(SHOAL_BIN_DIR) + "/storage/shoal-storage", "--listen",
                                   storage_address(node), "--node-id", std::to_string(node), "--targets",
                                   std::to_string(target) + ":" + target_dir(target), "--meta-address",
                                   meta_address(), "--cluster-id", "test", "--cluster-key-file", key_file_,
                                   "--heartbeat-interval-ms", "200", "--metrics-listen", metrics_address(node)};
  if (!storage_formatted_[node - 1]) args.push_back("--format");
  storage_formatted_[node - 1] = true;
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  storage_pids_[node - 1] = Spawn(args, "storage" + std::to_string(node));
}

int LocalCluster::WaitExit(pid_t& pid, std::chrono::milliseconds timeout) {
  if (pid <= 0) return -1;
  int status = 0;
  if (!WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout)) return -1;
  pid = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string LocalCluster::Log(const std::string& name) const {
  std::ifstream in(dir_ + "/" + name + ".log");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<std::string> LocalCluster::FuseCommand(const std::vector<std::string>& extra_args) const {
  std::vector<std::string> args = {std::string(SHOAL_BIN_DIR) + "/client/fuse/shoal-fuse",
                                   "--mountpoint", mount_,
                                   "--meta-address", meta_address(),
                                   "--cluster-id", "test",
                                   "--cluster-key-file", key_file_,
                                   "--io-timeout-ms", "3000"};
  // SHOAL_TEST_FUSE_ARGS runs every mount of a suite another way, e.g.
  // "--uring on" (with enable_uring=Y) for the whole suite over io_uring.
  if (const char* env = getenv("SHOAL_TEST_FUSE_ARGS")) {
    std::istringstream words(env);
    for (std::string w; words >> w;) args.push_back(w);
  }
  args.insert(args.end(), fuse_args_.begin(), fuse_args_.end());
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return args;
}

bool LocalCluster::StartFuse(const std::vector<std::string>& extra_args) {
  fuse_pid_ = Spawn(FuseCommand(extra_args), "fuse");
  if (!WaitFor([&] { return Mounted(mount_); })) {
    error_ = "mount did not appear; see " + dir_ + "/fuse.log";
    return false;
  }
  return true;
}

bool LocalCluster::WaitNodesOnline(int n) {
  return WaitFor([&] {
    auto c = client::Client::Connect(ClientOptions());
    if (!c.ok()) return false;
    auto t = (*c)->ClusterTable(true);
    if (!t.ok()) return false;
    int online = 0;
    for (const auto& node : t->nodes()) online += node.state() == proto::NODE_ONLINE;
    return online >= n;
  });
}

bool LocalCluster::Start(bool mount) {
  StartMeta();
  for (int i = 1; i <= kNodes; ++i) StartStorage(i);
  if (!WaitNodesOnline(kNodes)) {
    error_ = "storage nodes did not come online; logs in " + dir_;
    return false;
  }
  return !mount || StartFuse();
}

double LocalCluster::Metric(int node, const std::string& sample) const {
  auto c = rpc::TcpTransport()->Connect(metrics_address(node), 2000);
  if (!c.ok()) return -1;
  (*c)->SetTimeouts(5000, 5000);
  std::string req = "GET /metrics HTTP/1.1\r\n\r\n", out;
  iovec v{req.data(), req.size()};
  if (!(*c)->WriteV(&v, 1).ok()) return -1;
  char buf[8192];
  for (auto n = (*c)->ReadSome(buf, sizeof(buf)); n.ok(); n = (*c)->ReadSome(buf, sizeof(buf))) out.append(buf, *n);
  auto at = out.find("\n" + sample + " ");
  if (at == std::string::npos) return -1;
  return std::stod(out.substr(at + sample.size() + 2));
}

client::ClientOptions LocalCluster::ClientOptions() const {
  client::ClientOptions o;
  o.meta_address = meta_address();
  o.cluster_id = "test";
  o.cluster_key = *rpc::LoadClusterKey(key_file_);
  o.meta_timeout_ms = 3000;
  o.io_timeout_ms = 3000;
  return o;
}

std::unique_ptr<client::Client> LocalCluster::NewClient() const {
  auto c = client::Client::Connect(ClientOptions());
  if (!c.ok()) return nullptr;
  return std::move(c).value();
}

namespace {
const char kEnableUring[] = "/sys/module/fuse/parameters/enable_uring";
}

FuseUringParameter::FuseUringParameter(bool on) {
  std::ifstream in(kEnableUring);
  if (!(in >> old_)) {
    old_.clear();
    return;
  }
  std::ofstream(kEnableUring) << (on ? "Y" : "N");
}

FuseUringParameter::~FuseUringParameter() {
  if (!old_.empty()) std::ofstream(kEnableUring) << old_;
}

}  // namespace shoal::testing
