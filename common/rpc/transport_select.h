// Picks the transport a process uses: "tcp", "rdma" or "auto" (RDMA when a
// device is usable, else TCP). Every fallback to TCP is logged with its reason.
#pragma once

#include <string>

#include "common/rpc/transport.h"

namespace shoal::rpc {

// True when libibverbs lists a device and librdmacm can open an event channel;
// otherwise false with the reason in *why.
bool RdmaUsable(std::string* why);

// INVALID_ARGUMENT for an unknown preference.
Result<Transport*> SelectTransport(const std::string& preference);

}  // namespace shoal::rpc
