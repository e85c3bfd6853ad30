// One storage server for in-process tests: the given chunk store behind a
// StorageService on its own event loop and LoopServer, as shoal-storage runs
// them, on any transport.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "common/loop/event_loop.h"
#include "common/rpc/loop_server.h"
#include "storage/chunk_store.h"
#include "storage/storage_service.h"

namespace shoal::testing {

class StorageNode {
 public:
  static Result<std::unique_ptr<StorageNode>> Start(rpc::Transport* transport, const std::string& address,
                                                    const rpc::Credentials& creds, uint32_t target_id,
                                                    storage::ChunkStore* store) {
    std::unique_ptr<StorageNode> n(new StorageNode);
    loop::EventLoop::Options lo;
    lo.name = "storage-" + address;
    ASSIGN_OR_RETURN(n->loop_, loop::EventLoop::Start(lo));
    storage::StorageService::Options so;
    so.max_read_bytes = 32 << 20;
    n->service_ = std::make_unique<storage::StorageService>(std::map<uint32_t, storage::ChunkStore*>{{target_id, store}},
                                                            std::vector<loop::EventLoop*>{n->loop_.get()}, so);
    rpc::LoopServer::Options o;
    o.listen = address;
    o.creds = creds;
    o.name = "storage " + address;
    n->server_ = std::make_unique<rpc::LoopServer>(o, transport, std::vector<loop::EventLoop*>{n->loop_.get()});
    n->service_->Register(*n->server_);
    RETURN_IF_ERROR(n->server_->Start());
    return n;
  }

  ~StorageNode() {
    if (server_) server_->Stop();
    service_.reset();  // writes in progress finish; their replies go nowhere
    server_.reset();
    loop_.reset();  // reads in flight complete
  }

  rpc::LoopServer& server() { return *server_; }
  loop::EventLoop& loop() { return *loop_; }
  storage::StorageService& service() { return *service_; }

 private:
  StorageNode() = default;
  std::unique_ptr<loop::EventLoop> loop_;
  std::unique_ptr<storage::StorageService> service_;
  std::unique_ptr<rpc::LoopServer> server_;
};

}  // namespace shoal::testing
