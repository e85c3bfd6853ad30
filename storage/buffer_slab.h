// BufferSlab: fixed-size, 4 KiB-aligned read buffers carved from one block,
// handed out without a heap allocation per read. An event loop's read engine
// registers the block with its ring (io_uring_register_buffers), so reads into
// it go as READ_FIXED: the kernel pins the pages once, not on every read.
//
// A SlabBuffer owns one slot and gives it back when it goes; it keeps the slab
// alive, so a buffer (and a read the kernel is doing into it) may outlive the
// engine that handed it out.
//
// Thread-safety: Acquire and release may happen on any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace shoal::storage {

class BufferSlab;

class SlabBuffer {
 public:
  SlabBuffer() = default;
  SlabBuffer(std::shared_ptr<BufferSlab> slab, uint32_t slot, uint8_t* data)
      : slab_(std::move(slab)), slot_(slot), data_(data) {}
  ~SlabBuffer() { Reset(); }
  SlabBuffer(SlabBuffer&& o) noexcept { *this = std::move(o); }
  SlabBuffer& operator=(SlabBuffer&& o) noexcept;
  SlabBuffer(const SlabBuffer&) = delete;
  SlabBuffer& operator=(const SlabBuffer&) = delete;

  uint8_t* data() const { return data_; }
  explicit operator bool() const { return data_ != nullptr; }
  // Index of the slab's block among the ring's registered buffers, for
  // READ_FIXED; -1 when it is not registered (or the buffer is empty).
  int buf_index() const;
  void Reset();

 private:
  std::shared_ptr<BufferSlab> slab_;
  uint32_t slot_ = 0;
  uint8_t* data_ = nullptr;
};

class BufferSlab : public std::enable_shared_from_this<BufferSlab> {
 public:
  // `slots` buffers of `slot_size` bytes (a multiple of 4 KiB). nullptr when
  // the memory cannot be had.
  static std::shared_ptr<BufferSlab> Create(uint32_t slots, uint32_t slot_size);
  ~BufferSlab();

  // A free slot of slot_size() bytes; an empty buffer when all are taken (the
  // caller falls back to the heap).
  SlabBuffer Acquire();

  uint32_t slot_size() const { return slot_size_; }
  uint8_t* base() const { return base_; }
  size_t bytes() const { return size_t{slots_} * slot_size_; }
  size_t free_slots() const;
  // Set by whoever registers the block with a ring (before any Acquire).
  void set_buf_index(int index) { buf_index_ = index; }
  int buf_index() const { return buf_index_; }

 private:
  friend class SlabBuffer;
  BufferSlab(uint8_t* base, uint32_t slots, uint32_t slot_size);
  void Release(uint32_t slot);

  uint8_t* base_;
  uint32_t slots_, slot_size_;
  int buf_index_ = -1;
  mutable std::mutex mu_;
  std::vector<uint32_t> free_;  // guarded by mu_
};

}  // namespace shoal::storage
