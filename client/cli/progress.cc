#include "client/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace shoal::cli {

std::string HumanBytes(double bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else std::snprintf(buf, sizeof buf, "%.1f %s", bytes, kUnits[u]);
  return buf;
}

namespace {
std::string Duration(int64_t seconds) {
  char buf[32];
  if (seconds >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", static_cast<long>(seconds / 3600),
                  static_cast<long>(seconds / 60 % 60), static_cast<long>(seconds % 60));
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", static_cast<long>(seconds / 60), static_cast<long>(seconds % 60));
  return buf;
}

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ProgressLine::ProgressLine(FILE* out, bool enabled, std::string label, uint64_t total,
                           std::function<int64_t()> now_ms, int redraws_per_second)
    : out_(out),
      enabled_(enabled),
      label_(std::move(label)),
      total_(total),
      now_ms_(std::move(now_ms)),
      min_interval_ms_(1000 / std::max(redraws_per_second, 1)),
      start_ms_(now_ms_()) {}

ProgressLine ProgressLine::ForStderr(std::string label, uint64_t total) {
  return ProgressLine(stderr, isatty(STDERR_FILENO) == 1, std::move(label), total, SteadyNowMs);
}

std::string ProgressLine::Render(uint64_t done, int64_t elapsed_ms) const {
  std::string line = label_ + ": " + HumanBytes(static_cast<double>(done));
  if (total_ > 0) {
    char pct[16];
    std::snprintf(pct, sizeof pct, " %3d%%", static_cast<int>(done * 100 / total_));
    line += " / " + HumanBytes(static_cast<double>(total_)) + pct;
  }
  // The average since the start: steady enough to read, honest about stalls.
  if (elapsed_ms > 0) {
    double rate = static_cast<double>(done) * 1000.0 / static_cast<double>(elapsed_ms);
    line += "  " + HumanBytes(rate) + "/s";
    if (total_ > 0 && done < total_ && rate > 0)
      line += "  ETA " + Duration(static_cast<int64_t>(static_cast<double>(total_ - done) / rate + 0.999));
  }
  return line;
}

void ProgressLine::Update(uint64_t done) {
  if (!enabled_) return;
  int64_t now = now_ms_();
  if (last_draw_ms_ >= 0 && now - last_draw_ms_ < min_interval_ms_) return;
  last_draw_ms_ = now;
  // Carriage return, the line, then erase whatever a longer previous line left.
  std::fprintf(out_, "\r%s\033[K", Render(done, now - start_ms_).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressLine::Finish() {
  if (!enabled_ || !drawn_) return;
  std::fputs("\r\033[K", out_);
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace shoal::cli
