// Metrics: Prometheus text exposition served over HTTP (GET /metrics), and a
// fixed-bucket latency histogram that is cheap enough for the hot path
// (relaxed atomics, no lock, no allocation).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/rpc/transport.h"

namespace shoal {

class Histogram {
 public:
  void Observe(uint64_t micros);
  // Appends `name` as a Prometheus histogram in seconds, with optional labels ("a=\"b\"").
  void Render(std::string* out, const std::string& name, const std::string& help,
              const std::string& labels = "") const;

 private:
  static constexpr std::array<uint64_t, 14> kBoundsMicros = {50,    100,   200,    500,    1000,   2000,   5000,
                                                             10000, 20000, 50000, 100000, 200000, 500000, 1000000};
  std::array<std::atomic<uint64_t>, kBoundsMicros.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0}, sum_micros_{0};
};

// Appends one sample line: `name{labels} value`, with HELP/TYPE lines when help is set.
void RenderMetric(std::string* out, const std::string& name, const std::string& type, const std::string& help,
                  double value, const std::string& labels = "");

// Serves GET /metrics with `render()` on its own thread; other paths get 404,
// other methods 405, malformed requests 400. One request per connection.
class MetricsServer {
 public:
  MetricsServer(std::string listen, std::function<std::string()> render);
  ~MetricsServer();
  Status Start();
  std::string Address() const;

 private:
  void Serve();
  std::string listen_;
  std::function<std::string()> render_;
  std::unique_ptr<rpc::Listener> listener_;
  std::thread thread_;
};

}  // namespace shoal
