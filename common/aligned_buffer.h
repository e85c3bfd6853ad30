// A heap buffer aligned for O_DIRECT I/O (4 KiB). Move-only; owns its memory.
//
// A buffer of size 0 owns nothing (data() is nullptr): an empty RPC payload
// costs no allocation. The constructor throws std::bad_alloc when memory is
// short; code sizing a buffer from untrusted input (a peer-declared length)
// uses TryAllocate instead, which reports failure as a value.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

namespace shoal {

constexpr size_t kDirectIoAlign = 4096;

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size, size_t align = kDirectIoAlign) {
    if (!TryAllocate(size, this, align)) throw std::bad_alloc();
  }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  // Replaces *out with a buffer of `size` bytes; false (and *out empty) when
  // the memory is not available. Size 0 always succeeds without allocating.
  static bool TryAllocate(size_t size, AlignedBuffer* out, size_t align = kDirectIoAlign) {
    AlignedBuffer b;
    if (size > 0) {
      size_t rounded = (size + align - 1) / align * align;
      if (rounded < size) return false;  // overflow
      b.data_ = static_cast<uint8_t*>(std::aligned_alloc(align, rounded));
      if (!b.data_) {
        *out = AlignedBuffer();
        return false;
      }
      allocation_counter().fetch_add(1, std::memory_order_relaxed);
    }
    b.size_ = size;
    *out = std::move(b);
    return true;
  }

  // Allocations made by every AlignedBuffer in the process so far (for tests
  // that check a path allocates nothing).
  static uint64_t allocations() { return allocation_counter().load(std::memory_order_relaxed); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  static std::atomic<uint64_t>& allocation_counter() {
    static std::atomic<uint64_t> n{0};
    return n;
  }
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace shoal
