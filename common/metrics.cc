#include "common/metrics.h"

#include <cstdio>

#include "common/log.h"

namespace shoal {

void Histogram::Observe(uint64_t micros) {
  size_t i = 0;
  while (i < kBoundsMicros.size() && micros > kBoundsMicros[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(micros, std::memory_order_relaxed);
}

void Histogram::Render(std::string* out, const std::string& name, const std::string& help,
                       const std::string& labels) const {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  std::string sep = labels.empty() ? "" : labels + ",";
  uint64_t cumulative = 0;
  char le[32];
  for (size_t i = 0; i < kBoundsMicros.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    snprintf(le, sizeof(le), "%g", kBoundsMicros[i] / 1e6);
    *out += name + "_bucket{" + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_.back().load(std::memory_order_relaxed);
  *out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  char sum[32];
  snprintf(sum, sizeof(sum), "%.6f", sum_micros_.load(std::memory_order_relaxed) / 1e6);
  *out += name + "_sum" + braces + " " + sum + "\n";
  *out += name + "_count" + braces + " " + std::to_string(count_.load(std::memory_order_relaxed)) + "\n";
}

void RenderMetric(std::string* out, const std::string& name, const std::string& type, const std::string& help,
                  double value, const std::string& labels) {
  if (!help.empty()) *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  char v[32];
  snprintf(v, sizeof(v), "%.17g", value);
  *out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + v + "\n";
}

MetricsServer::MetricsServer(std::string listen, std::function<std::string()> render)
    : listen_(std::move(listen)), render_(std::move(render)) {}

MetricsServer::~MetricsServer() {
  if (listener_) listener_->Close();
  if (thread_.joinable()) thread_.join();
}

Status MetricsServer::Start() {
  ASSIGN_OR_RETURN(listener_, rpc::TcpTransport()->Listen(listen_));
  thread_ = std::thread([this] { Serve(); });
  LOG_INFO("metrics on http://{}/metrics", listener_->Address());
  return Status::OK();
}

std::string MetricsServer::Address() const { return listener_ ? listener_->Address() : ""; }

void MetricsServer::Serve() {
  for (;;) {
    auto conn = listener_->Accept();
    if (!conn.ok()) {
      if (conn.status().code() == proto::CANCELLED) return;
      continue;
    }
    rpc::Connection& c = **conn;
    c.SetTimeouts(2000, 2000);  // a silent client cannot hold the scraper thread
    std::string req;
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
      char buf[1024];
      auto n = c.ReadSome(buf, sizeof(buf));
      if (!n.ok()) break;
      req.append(buf, *n);
    }
    std::string status = "200 OK", body;
    if (req.find("\r\n") == std::string::npos) {
      status = "400 Bad Request";
    } else if (req.rfind("GET ", 0) != 0) {
      status = "405 Method Not Allowed";
    } else if (req.rfind("GET /metrics ", 0) != 0 && req.rfind("GET /metrics?", 0) != 0) {
      status = "404 Not Found";
    } else {
      body = render_();
    }
    std::string head = "HTTP/1.1 " + status + "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                       std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    iovec iov[2] = {{head.data(), head.size()}, {body.data(), body.size()}};
    (void)c.WriteV(iov, 2);
  }
}

}  // namespace shoal
