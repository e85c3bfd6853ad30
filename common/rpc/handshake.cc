#include "common/rpc/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/config.h"
#include "common/rpc/frame.h"
#include "proto/cluster.pb.h"

namespace shoal::rpc {

namespace {
constexpr size_t kNonceBytes = 32;
constexpr uint64_t kMaxHandshakeFrame = 4096;

std::string Nonce() {
  std::string n(kNonceBytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(n.data()), static_cast<int>(n.size()));
  return n;
}

std::string Mac(const std::string& key, const std::string& label, const std::string& a, const std::string& b) {
  std::string data = label + a + b;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

bool SameMac(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status Send(Connection& conn, proto::Method method, const google::protobuf::Message& msg) {
  FrameHeader h;
  h.method = method;
  return SendFrame(conn, h, msg.SerializeAsString());
}

template <typename M>
Status Receive(Connection& conn, proto::Method method, M* msg) {
  FrameHeader h;
  std::string body;
  RETURN_IF_ERROR(ReadSmallFrame(conn, kMaxHandshakeFrame, &h, &body));
  if (h.method != static_cast<uint32_t>(method))
    return Error(proto::PROTOCOL_ERROR, "expected handshake step " + proto::Method_Name(method) + ", got method " +
                                            std::to_string(h.method));
  if (h.status != proto::OK) {
    proto::ErrorDetail d;
    d.ParseFromString(body);
    return Error(static_cast<ErrorCode>(h.status), "peer refused: " + d.message());
  }
  if (!msg->ParseFromString(body)) return Error(proto::PROTOCOL_ERROR, "malformed handshake message");
  return Status::OK();
}

Status Refuse(Connection& conn, proto::Method method, Status st) {
  FrameHeader h;
  h.method = method;
  h.status = st.code();
  proto::ErrorDetail d;
  d.set_message(st.message());
  (void)SendFrame(conn, h, d.SerializeAsString());
  return st;
}
}  // namespace

Status ServerHandshake(Connection& conn, const Credentials& creds) {
  conn.SetTimeouts(creds.timeout_ms, creds.timeout_ms);
  proto::Hello hello;
  RETURN_IF_ERROR(Receive(conn, proto::HANDSHAKE_HELLO, &hello));
  if (hello.protocol_version() != kProtocolVersion)
    return Refuse(conn, proto::HANDSHAKE_CHALLENGE,
                  Error(proto::PROTOCOL_ERROR, "protocol version " + std::to_string(hello.protocol_version()) +
                                                   " not supported"));
  if (hello.cluster_id() != creds.cluster_id)
    return Refuse(conn, proto::HANDSHAKE_CHALLENGE,
                  Error(proto::AUTH_FAILED, "cluster id '" + hello.cluster_id() + "' is not this cluster"));
  if (hello.client_nonce().size() != kNonceBytes)
    return Refuse(conn, proto::HANDSHAKE_CHALLENGE, Error(proto::PROTOCOL_ERROR, "bad nonce"));
  proto::Challenge ch;
  ch.set_protocol_version(kProtocolVersion);
  ch.set_server_nonce(Nonce());
  ch.set_server_proof(Mac(creds.key, "shoal-server", hello.client_nonce(), ch.server_nonce()));
  RETURN_IF_ERROR(Send(conn, proto::HANDSHAKE_CHALLENGE, ch));
  proto::Proof proof;
  RETURN_IF_ERROR(Receive(conn, proto::HANDSHAKE_PROOF, &proof));
  if (!SameMac(proof.client_proof(), Mac(creds.key, "shoal-client", ch.server_nonce(), hello.client_nonce())))
    return Refuse(conn, proto::HANDSHAKE_WELCOME, Error(proto::AUTH_FAILED, "wrong cluster key"));
  proto::Welcome welcome;
  welcome.add_transports("tcp");
  RETURN_IF_ERROR(Send(conn, proto::HANDSHAKE_WELCOME, welcome));
  conn.SetTimeouts(0, creds.timeout_ms);
  return Status::OK();
}

Status ClientHandshake(Connection& conn, const Credentials& creds) {
  conn.SetTimeouts(creds.timeout_ms, creds.timeout_ms);
  proto::Hello hello;
  hello.set_protocol_version(kProtocolVersion);
  hello.set_cluster_id(creds.cluster_id);
  hello.set_client_nonce(Nonce());
  hello.add_transports("tcp");
  RETURN_IF_ERROR(Send(conn, proto::HANDSHAKE_HELLO, hello));
  proto::Challenge ch;
  RETURN_IF_ERROR(Receive(conn, proto::HANDSHAKE_CHALLENGE, &ch));
  if (!SameMac(ch.server_proof(), Mac(creds.key, "shoal-server", hello.client_nonce(), ch.server_nonce())))
    return Error(proto::AUTH_FAILED, "server " + conn.PeerName() + " does not hold the cluster key");
  proto::Proof proof;
  proof.set_client_proof(Mac(creds.key, "shoal-client", ch.server_nonce(), hello.client_nonce()));
  RETURN_IF_ERROR(Send(conn, proto::HANDSHAKE_PROOF, proof));
  proto::Welcome welcome;
  RETURN_IF_ERROR(Receive(conn, proto::HANDSHAKE_WELCOME, &welcome));
  conn.SetTimeouts(0, creds.timeout_ms);
  return Status::OK();
}

Result<std::string> LoadClusterKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path));
  std::string hex;
  for (char c : text)
    if (!isspace(static_cast<unsigned char>(c))) hex.push_back(c);
  long len = 0;
  unsigned char* raw = OPENSSL_hexstr2buf(hex.c_str(), &len);
  if (!raw || hex.size() % 2 != 0) {
    OPENSSL_free(raw);
    return Error(proto::INVALID_ARGUMENT, "cluster key file " + path + " is not hex");
  }
  std::string key(reinterpret_cast<char*>(raw), len);
  OPENSSL_free(raw);
  if (key.size() < 16) return Error(proto::INVALID_ARGUMENT, "cluster key in " + path + " is shorter than 16 bytes");
  return key;
}

}  // namespace shoal::rpc
