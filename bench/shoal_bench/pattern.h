// The bytes shoal-bench writes and checks: byte p of the file with index i
// is byte (p % 8) of Mix(i, p / 8), so any read of any range is checkable on
// its own, and two files or two places never look alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace shoal::bench {

inline uint64_t PatternWord(uint64_t file_index, uint64_t word) {
  uint64_t z = file_index * 0x9e3779b97f4a7c15ull + word + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint8_t PatternByte(uint64_t file_index, uint64_t pos) {
  return static_cast<uint8_t>(PatternWord(file_index, pos / 8) >> (8 * (pos % 8)));
}

// Writes the pattern of [offset, offset + len) into buf (little-endian words).
inline void FillPattern(uint64_t file_index, uint64_t offset, uint8_t* buf, size_t len) {
  size_t i = 0;
  for (; i < len && (offset + i) % 8 != 0; ++i) buf[i] = PatternByte(file_index, offset + i);
  for (; i + 8 <= len; i += 8) {
    uint64_t w = PatternWord(file_index, (offset + i) / 8);
    std::memcpy(buf + i, &w, 8);
  }
  for (; i < len; ++i) buf[i] = PatternByte(file_index, offset + i);
}

// The offset within buf of the first byte that differs from the pattern, or
// -1 when all of [offset, offset + len) match.
inline int64_t CheckPattern(uint64_t file_index, uint64_t offset, const uint8_t* buf, size_t len) {
  size_t i = 0;
  for (; i < len && (offset + i) % 8 != 0; ++i)
    if (buf[i] != PatternByte(file_index, offset + i)) return static_cast<int64_t>(i);
  for (; i + 8 <= len; i += 8) {
    uint64_t w = PatternWord(file_index, (offset + i) / 8), got;
    std::memcpy(&got, buf + i, 8);
    if (got != w) break;  // the byte loop below finds which
  }
  for (; i < len; ++i)
    if (buf[i] != PatternByte(file_index, offset + i)) return static_cast<int64_t>(i);
  return -1;
}

// Dataset files are named by their index (8 digits); their sizes follow from it.
inline uint64_t DatasetFileSize(uint64_t index, uint64_t min_size, uint64_t max_size) {
  return min_size + PatternWord(index, ~0ull) % (max_size - min_size + 1);
}

inline std::string DatasetFileName(uint64_t index) {
  char name[24];
  std::snprintf(name, sizeof(name), "%08llu", static_cast<unsigned long long>(index));
  return name;
}
// False for a name that is not all digits (not a dataset file).
inline bool DatasetFileIndex(const std::string& name, uint64_t* index) {
  if (name.empty() || name.size() > 18) return false;
  uint64_t v = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *index = v;
  return true;
}

}  // namespace shoal::bench
