#include "common/rpc/server.h"

#include "common/log.h"
#include "common/rpc/frame_reader.h"

namespace shoal::rpc {

class ServerConnection {
 public:
  ServerConnection(std::unique_ptr<Connection> conn, RpcServer* server) : conn_(std::move(conn)), server_(server) {}

  Status Send(const FrameHeader& h, const std::string& msg, const iovec* payload, int n) {
    std::lock_guard<std::mutex> l(send_mu_);
    if (closed_) return Error(proto::UNAVAILABLE, "connection closed");
    Status st = SendFrame(*conn_, h, msg, payload, n);
    if (!st.ok()) Close();
    return st;
  }
  void Close() {
    closed_ = true;
    conn_->Shutdown();
  }
  Connection& conn() { return *conn_; }
  RpcServer* server() { return server_; }

 private:
  std::unique_ptr<Connection> conn_;
  RpcServer* server_;
  std::mutex send_mu_;
  std::atomic<bool> closed_{false};
};

ServerCall::ServerCall(std::shared_ptr<ServerConnection> conn, FrameHeader header, std::string message,
                       AlignedBuffer payload)
    : conn_(std::move(conn)), header_(header), message_(std::move(message)), payload_(std::move(payload)) {}

std::string ServerCall::peer() const { return conn_->conn().PeerName(); }

bool ServerCall::Parse(google::protobuf::Message* msg) {
  if (msg->ParseFromString(message_)) return true;
  LOG_WARN("closing connection from {}: unparsable {} request", peer(), proto::Method_Name(method()));
  ReplyError(Error(proto::PROTOCOL_ERROR, "unparsable request message"));
  conn_->Close();
  return false;
}

void ServerCall::Reply(const google::protobuf::Message& rsp, const iovec* payload, int payload_iovs) {
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = proto::OK;
  (void)conn_->Send(h, rsp.SerializeAsString(), payload, payload_iovs);
}

void ServerCall::ReplyError(const Status& st) {
  FrameHeader h = header_;
  h.flags = kFlagResponse;
  h.status = st.code();
  proto::ErrorDetail d;
  d.set_message(st.message());
  (void)conn_->Send(h, d.SerializeAsString(), nullptr, 0);
}

RpcServer::RpcServer(Options options, Transport* transport)
    : options_(std::move(options)), transport_(transport) {}

RpcServer::~RpcServer() { Stop(); }

void RpcServer::Register(proto::Method method, Dispatch dispatch, Handler handler) {
  handlers_[method] = {dispatch, std::move(handler)};
}

Status RpcServer::Start() {
  ASSIGN_OR_RETURN(listener_, transport_->Listen(options_.listen));
  pool_ = std::make_unique<ThreadPool>(options_.worker_threads);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  LOG_INFO("{} listening on {} ({})", options_.name, listener_->Address(), transport_->Name());
  return Status::OK();
}

std::string RpcServer::Address() const { return listener_ ? listener_->Address() : ""; }

void RpcServer::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ || !listener_) return;
    stopping_ = true;
  }
  listener_->Close();
  accept_thread_.join();
  {
    std::unique_lock<std::mutex> l(mu_);
    for (auto& c : conns_) c->Close();
    cv_.wait(l, [this] { return live_readers_ == 0; });
  }
  pool_.reset();  // drains queued handlers; their replies fail on closed connections
}

void RpcServer::AcceptLoop() {
  for (;;) {
    auto conn = listener_->Accept();
    if (!conn.ok()) {
      if (conn.status().code() == proto::CANCELLED) return;
      LOG_WARN("{}: {}", options_.name, conn.status().ToString());
      continue;
    }
    auto sc = std::make_shared<ServerConnection>(std::move(conn).value(), this);
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    conns_.insert(sc);
    ++live_readers_;
    std::thread([this, sc] { Serve(sc); }).detach();
  }
}

void RpcServer::Serve(std::shared_ptr<ServerConnection> sc) {
  Connection& conn = sc->conn();
  Status st = ServerHandshake(conn, options_.creds);
  if (!st.ok()) {
    ++rejected_connections_;
    LOG_WARN("{}: refused connection from {}: {}", options_.name, conn.PeerName(), st.ToString());
  }
  FrameReader in(conn, options_.max_frame_bytes);
  while (st.ok()) {
    FrameHeader h;
    st = in.ReadHeader(&h);
    if (st.ok() && h.is_response()) st = Error(proto::PROTOCOL_ERROR, "response frame sent to a server");
    if (!st.ok()) {
      // A peer that went away is not worth a log line; bad input is.
      if (st.code() != proto::UNAVAILABLE)
        LOG_WARN("{}: closing connection from {}: {}", options_.name, conn.PeerName(), st.ToString());
      break;
    }
    std::string msg(h.message_len, '\0');
    AlignedBuffer payload(h.payload_len);
    iovec iov[2] = {{msg.data(), msg.size()}, {payload.data(), h.payload_len}};
    st = in.ReadV(iov, 2);
    if (!st.ok()) break;
    auto call = std::make_shared<ServerCall>(sc, h, std::move(msg), std::move(payload));
    auto it = handlers_.find(h.method);
    if (it == handlers_.end()) {
      call->ReplyError(Error(proto::NOT_SUPPORTED, "unknown method " + std::to_string(h.method)));
      continue;
    }
    if (it->second.first == Dispatch::kInline) {
      it->second.second(std::move(call));
    } else {
      Handler& handler = it->second.second;
      pool_->Submit([&handler, call] { handler(call); });
    }
  }
  sc->Close();
  std::lock_guard<std::mutex> l(mu_);
  conns_.erase(sc);
  --live_readers_;
  cv_.notify_all();
}

}  // namespace shoal::rpc
