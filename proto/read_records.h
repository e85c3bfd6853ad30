// The packed read (STORAGE_READ_PACKED): a batched chunk read whose items and
// results are fixed-size little-endian records instead of protobuf messages,
// so a request of many 4 KiB items costs no allocation per item to build or
// parse on either side. Same meaning as ReadReq / ReadRsp (storage.proto);
// the payload is the same too: the bytes of every OK item, in item order.
//
// Request message: N item records of kReadItemBytes each (N >= 0):
//   target_id u32 | chunk_size u32 | inode u64 | index u64 | offset u32 |
//   length u32 | chain_version u64
// Response message: N result records of kReadResultBytes each, in item order:
//   code u32 (an ErrorCode) | message_len u32
// followed by the messages of the results (message_len bytes each, in order;
// an OK result has none).
//
// Decoding checks sizes only; what the values mean is the caller's to check.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "proto/common.pb.h"

namespace shoal::proto {

static_assert(std::endian::native == std::endian::little, "packed read records are little-endian");

struct ReadItemRecord {
  uint32_t target_id = 0;
  uint32_t chunk_size = 0;
  uint64_t inode = 0;
  uint64_t index = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint64_t chain_version = 0;
};
static_assert(sizeof(ReadItemRecord) == 40, "no padding: the record is its wire form");
constexpr size_t kReadItemBytes = sizeof(ReadItemRecord);
constexpr size_t kReadResultBytes = 8;

inline void AppendReadItem(std::string* msg, const ReadItemRecord& item) {
  msg->append(reinterpret_cast<const char*>(&item), sizeof(item));
}

// The number of items in a request message; false when its size is not a
// whole number of records.
inline bool CountReadItems(std::string_view msg, size_t* count) {
  if (msg.size() % kReadItemBytes != 0) return false;
  *count = msg.size() / kReadItemBytes;
  return true;
}

// Item i of a request message whose count CountReadItems gave.
inline ReadItemRecord ReadItemAt(std::string_view msg, size_t i) {
  ReadItemRecord r;
  std::memcpy(&r, msg.data() + i * kReadItemBytes, kReadItemBytes);
  return r;
}

// Builds a response message: n results, set one by one in item order.
class ReadResultsWriter {
 public:
  explicit ReadResultsWriter(size_t n) : n_(n) { out_.resize(n * kReadResultBytes); }
  void Set(size_t i, ErrorCode code, std::string_view message = {}) {
    uint32_t rec[2] = {static_cast<uint32_t>(code), code == OK ? 0u : static_cast<uint32_t>(message.size())};
    std::memcpy(out_.data() + i * kReadResultBytes, rec, sizeof(rec));
    if (code != OK) out_.append(message);
  }
  std::string Take() { return std::move(out_); }

 private:
  size_t n_;
  std::string out_;
};

// Reads a response message of `n` results. Valid() is false when its size
// does not match its records; messages are then not to be read.
class ReadResultsReader {
 public:
  ReadResultsReader(std::string_view msg, size_t n) : msg_(msg), n_(n) {
    if (msg.size() < n * kReadResultBytes) return;
    uint64_t text = 0;
    for (size_t i = 0; i < n; ++i) text += Record(i)[1];
    valid_ = text == msg.size() - n * kReadResultBytes;
  }
  bool Valid() const { return valid_; }
  ErrorCode code(size_t i) const { return static_cast<ErrorCode>(Record(i)[0]); }
  // Messages in order: call for i = 0, 1, ... (each call moves past one).
  std::string_view NextMessage(size_t i) {
    uint32_t len = Record(i)[1];
    std::string_view m = msg_.substr(n_ * kReadResultBytes + text_at_, len);
    text_at_ += len;
    return m;
  }

 private:
  std::array<uint32_t, 2> Record(size_t i) const {
    std::array<uint32_t, 2> r;
    std::memcpy(r.data(), msg_.data() + i * kReadResultBytes, sizeof(r));
    return r;
  }
  std::string_view msg_;
  size_t n_;
  bool valid_ = false;
  size_t text_at_ = 0;
};

}  // namespace shoal::proto
