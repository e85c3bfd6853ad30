// Latency histogram: 32 linear buckets per power of two (within ~3%), fixed
// size, no allocation per sample; merged across threads at the end.
#pragma once

#include <array>
#include <cstdint>

namespace shoal::bench {

class Histogram {
 public:
  void Record(uint64_t v) {
    ++counts_[Index(v)];
    ++total_;
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
  }
  uint64_t count() const { return total_; }
  // The value below which a fraction q of the samples lie (a bucket's middle); 0 when empty.
  uint64_t Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_ - 1)) + 1, seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return (Lower(i) + Lower(i + 1)) / 2;
    }
    return Lower(counts_.size() - 1);
  }

 private:
  static constexpr int kSubBits = 5;  // 32 buckets per power of two
  static size_t Index(uint64_t v) {
    if (v < (2u << kSubBits)) return static_cast<size_t>(v);
    int shift = 63 - __builtin_clzll(v) - kSubBits;
    return static_cast<size_t>(shift) * (1u << kSubBits) + static_cast<size_t>(v >> shift);
  }
  static uint64_t Lower(size_t i) {
    if (i < (2u << kSubBits)) return i;
    size_t shift = i / (1u << kSubBits) - 1;
    return static_cast<uint64_t>(i % (1u << kSubBits) + (1u << kSubBits)) << shift;
  }
  std::array<uint64_t, (64 - kSubBits) * (1u << kSubBits) + (1u << kSubBits)> counts_{};
  uint64_t total_ = 0;
};

}  // namespace shoal::bench
