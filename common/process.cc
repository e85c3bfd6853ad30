#include "common/process.h"

#include <malloc.h>
#include <signal.h>

#include <climits>
#include <iostream>

namespace shoal {

void ClusterConfig::AddTo(ConfigSpec& spec) {
  spec.Add("cluster_id", &cluster_id, "cluster name every peer must present in the handshake");
  spec.Add("cluster_key_file", &cluster_key_file, "file with the shared cluster key (hex)");
  spec.Add("log_level", &log_level, "trace, debug, info, warn or error");
}

Result<rpc::Credentials> ClusterConfig::Credentials() const {
  ASSIGN_OR_RETURN(std::string key, rpc::LoadClusterKey(cluster_key_file));
  return rpc::Credentials{cluster_id, key, 5000};
}

RpcLimitsConfig::RpcLimitsConfig() {
  rpc::RpcServer::Options d;
  max_connections = d.max_connections;
  handshake_timeout_ms = d.handshake_timeout_ms;
  frame_read_timeout_ms = d.frame_read_timeout_ms;
  send_timeout_ms = d.send_timeout_ms;
  max_requests_in_flight = d.max_requests_in_flight;
  max_bytes_in_flight = static_cast<int64_t>(d.max_bytes_in_flight);
  max_items_per_request = d.max_items_per_request;
}

void RpcLimitsConfig::AddTo(ConfigSpec& spec) {
  spec.Add("max_connections", &max_connections, "RPC connections served at once; more are refused");
  spec.Add("handshake_timeout_ms", &handshake_timeout_ms, "total time a new connection has to finish the handshake");
  spec.Add("frame_read_timeout_ms", &frame_read_timeout_ms,
           "time a request frame has from its first byte to its last before the connection is closed");
  spec.Add("send_timeout_ms", &send_timeout_ms, "time a peer has to take a queued reply before it is disconnected");
  spec.Add("max_requests_in_flight", &max_requests_in_flight,
           "requests per connection being served or answered at once; beyond it the connection is not read");
  spec.Add("max_bytes_in_flight", &max_bytes_in_flight,
           "request and queued reply bytes per connection; beyond it the connection is not read");
  spec.Add("max_items_per_request", &max_items_per_request, "items in one batched request");
}

Status RpcLimitsConfig::ApplyTo(rpc::RpcServer::Options* o) const {
  auto to_int = [](const char* key, int64_t v, int* out) -> Status {
    if (v < 1 || v > INT32_MAX)
      return Error(proto::INVALID_ARGUMENT, std::string(key) + " = " + std::to_string(v) + " is out of range");
    *out = static_cast<int>(v);
    return Status::OK();
  };
  RETURN_IF_ERROR(to_int("max_connections", max_connections, &o->max_connections));
  RETURN_IF_ERROR(to_int("handshake_timeout_ms", handshake_timeout_ms, &o->handshake_timeout_ms));
  RETURN_IF_ERROR(to_int("frame_read_timeout_ms", frame_read_timeout_ms, &o->frame_read_timeout_ms));
  RETURN_IF_ERROR(to_int("send_timeout_ms", send_timeout_ms, &o->send_timeout_ms));
  if (max_requests_in_flight < 1) return Error(proto::INVALID_ARGUMENT, "max_requests_in_flight must be at least 1");
  if (max_bytes_in_flight < 1) return Error(proto::INVALID_ARGUMENT, "max_bytes_in_flight must be at least 1");
  if (max_items_per_request < 1) return Error(proto::INVALID_ARGUMENT, "max_items_per_request must be at least 1");
  o->max_requests_in_flight = max_requests_in_flight;
  o->max_bytes_in_flight = static_cast<uint64_t>(max_bytes_in_flight);
  o->max_items_per_request = max_items_per_request;
  return Status::OK();
}

namespace {
sigset_t StopSignals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  return s;
}
}  // namespace

void BlockStopSignals() {
  sigset_t s = StopSignals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
}

int WaitForStopSignal() {
  sigset_t s = StopSignals();
  int sig = 0;
  sigwait(&s, &sig);
  return sig;
}

void KeepLargeBuffersInHeap() {
  // 32 MiB is glibc's ceiling for the mapping threshold. Setting it fixes it
  // (no dynamic adjustment); the trim threshold keeps a burst's worth of
  // freed buffers at the top of the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int ExitWithError(const char* program, const Status& st) {
  std::cerr << program << ": " << st.ToString() << "\n";
  return 1;
}

}  // namespace shoal
