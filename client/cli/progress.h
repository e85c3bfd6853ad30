// A progress line for a terminal: bytes done (of the total, when known),
// percent, rate and time left, redrawn in place at most `redraws_per_second`
// times. Disabled (draws nothing, costs nothing) when its stream is not a
// terminal, so a piped or scripted `shoal` stays quiet.
//
// Not thread-safe: one thread updates it (the transfer's calling thread).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace shoal::cli {

class ProgressLine {
 public:
  // `now_ms` is a steady clock (tests pass their own). `total` 0: unknown.
  ProgressLine(FILE* out, bool enabled, std::string label, uint64_t total, std::function<int64_t()> now_ms,
               int redraws_per_second = 4);
  // Enabled when stderr is a terminal; draws on stderr with the steady clock.
  static ProgressLine ForStderr(std::string label, uint64_t total);

  // Records `done` bytes; redraws when the last redraw is old enough.
  void Update(uint64_t done);
  // Clears the line (the caller prints its own summary).
  void Finish();
  void set_total(uint64_t total) { total_ = total; }

  bool enabled() const { return enabled_; }
  // The text of the line for `done` bytes after `elapsed_ms` (no control characters).
  std::string Render(uint64_t done, int64_t elapsed_ms) const;

 private:
  FILE* out_;
  bool enabled_;
  std::string label_;
  uint64_t total_;
  std::function<int64_t()> now_ms_;
  int64_t min_interval_ms_;
  int64_t start_ms_;
  int64_t last_draw_ms_ = -1;
  bool drawn_ = false;
};

// 1536 -> "1.5 KiB"; below 1 KiB: "512 B".
std::string HumanBytes(double bytes);

}  // namespace shoal::cli
