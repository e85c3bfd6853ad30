#include "common/metrics.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

std::string Get(const std::string& addr, const std::string& request) {
  auto c = rpc::TcpTransport()->Connect(addr, 2000);
  if (!c.ok()) return "";
  (*c)->SetTimeouts(5000, 5000);
  iovec v{const_cast<char*>(request.data()), request.size()};
  if (!(*c)->WriteV(&v, 1).ok()) return "";
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = (*c)->ReadSome(buf, sizeof(buf));
    if (!n.ok()) break;
    out.append(buf, *n);
  }
  return out;
}

TEST(MetricsTest, HistogramBucketsAreCumulativeInSeconds) {
  Histogram h;
  h.Observe(40);      // <= 50 us
  h.Observe(150);     // <= 200 us
  h.Observe(5000000); // past the last bound
  std::string out;
  h.Render(&out, "x_seconds", "test", "t=\"1\"");
  EXPECT_NE(out.find("x_seconds_bucket{t=\"1\",le=\"5e-05\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{t=\"1\",le=\"0.0002\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{t=\"1\",le=\"1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{t=\"1\",le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count{t=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum{t=\"1\"} 5.000190\n"), std::string::npos) << out;
}

TEST(MetricsTest, ServesGetMetricsAndRefusesTheRest) {
  int renders = 0;
  MetricsServer server("127.0.0.1:0", [&] {
    std::string out;
    RenderMetric(&out, "shoal_test_total", "counter", "renders", ++renders);
    return out;
  });
  ASSERT_TRUE(server.Start().ok());
  std::string ok = Get(server.Address(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("# TYPE shoal_test_total counter\nshoal_test_total 1\n"), std::string::npos) << ok;
  EXPECT_EQ(Get(server.Address(), "GET /secret HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Get(server.Address(), "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_NE(Get(server.Address(), "GET /metrics HTTP/1.0\r\n\r\n").find("shoal_test_total 2"), std::string::npos);
}

}  // namespace
}  // namespace shoal
