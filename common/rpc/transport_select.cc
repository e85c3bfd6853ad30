#include "common/rpc/transport_select.h"

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace shoal::rpc {

bool RdmaUsable(std::string* why) {
  int n = 0;
  ibv_device** devices = ibv_get_device_list(&n);
  if (!devices || n == 0) {
    *why = "no RDMA device (ibv_get_device_list found none)";
    if (devices) ibv_free_device_list(devices);
    return false;
  }
  std::string name = ibv_get_device_name(devices[0]);
  ibv_free_device_list(devices);
  rdma_event_channel* ch = rdma_create_event_channel();
  if (!ch) {
    *why = std::string("rdma_create_event_channel failed: ") + std::strerror(errno);
    return false;
  }
  rdma_destroy_event_channel(ch);
  *why = "device " + name;
  return true;
}

Result<Transport*> SelectTransport(const std::string& preference) {
  if (preference == "tcp") return TcpTransport();
  if (preference != "rdma" && preference != "auto")
    return Error(proto::INVALID_ARGUMENT, "transport must be tcp, rdma or auto, not '" + preference + "'");
  std::string why;
  if (RdmaUsable(&why)) {
    // The verbs backend arrives with the RDMA issue; until then a device is
    // reported but not used.
    LOG_WARN("RDMA {} present but this build has no verbs transport; using TCP", why);
  } else {
    LOG_INFO("transport {}: {}; using TCP", preference, why);
  }
  return TcpTransport();
}

}  // namespace shoal::rpc
