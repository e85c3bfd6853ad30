// Connection handshake: protocol version, cluster id, and mutual proof of the
// cluster key by HMAC-SHA256 over fresh nonces (the key never crosses the wire).
//
//   client: HELLO{version, cluster_id, client_nonce}
//   server: CHALLENGE{server_nonce, HMAC(key, "shoal-server"|cn|sn)}
//   client: PROOF{HMAC(key, "shoal-client"|sn|cn)}
//   server: WELCOME
//
// Failures return AUTH_FAILED (wrong key or cluster id) or PROTOCOL_ERROR; the
// caller closes the connection. Both sides bound the exchange by `timeout_ms`.
#pragma once

#include <string>

#include "common/rpc/transport.h"

namespace shoal::rpc {

struct Credentials {
  std::string cluster_id;
  std::string key;  // raw secret bytes
  int timeout_ms = 5000;
};

Status ServerHandshake(Connection& conn, const Credentials& creds);
Status ClientHandshake(Connection& conn, const Credentials& creds);

// Loads a key file: hex text (whitespace ignored) of at least 16 bytes.
Result<std::string> LoadClusterKey(const std::string& path);

}  // namespace shoal::rpc
