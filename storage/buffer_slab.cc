#include "storage/buffer_slab.h"

#include <cstdlib>

namespace shoal::storage {

SlabBuffer& SlabBuffer::operator=(SlabBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    slab_ = std::move(o.slab_);
    slot_ = o.slot_;
    data_ = o.data_;
    o.data_ = nullptr;
  }
  return *this;
}

int SlabBuffer::buf_index() const { return data_ ? slab_->buf_index() : -1; }

void SlabBuffer::Reset() {
  if (data_) slab_->Release(slot_);
  data_ = nullptr;
  slab_.reset();
}

std::shared_ptr<BufferSlab> BufferSlab::Create(uint32_t slots, uint32_t slot_size) {
  if (slots == 0 || slot_size == 0 || slot_size % 4096 != 0) return nullptr;
  auto* base = static_cast<uint8_t*>(std::aligned_alloc(4096, size_t{slots} * slot_size));
  if (!base) return nullptr;
  return std::shared_ptr<BufferSlab>(new BufferSlab(base, slots, slot_size));
}

BufferSlab::BufferSlab(uint8_t* base, uint32_t slots, uint32_t slot_size)
    : base_(base), slots_(slots), slot_size_(slot_size) {
  free_.reserve(slots);
  for (uint32_t i = slots; i > 0; --i) free_.push_back(i - 1);
}

// Every buffer holds the slab, so no read is in flight into the block now. A
// ring it was registered with still pins its pages, but issues no read into
// them unless asked to (READ_FIXED), and nothing asks once the slab is gone.
BufferSlab::~BufferSlab() { std::free(base_); }

SlabBuffer BufferSlab::Acquire() {
  uint32_t slot;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (free_.empty()) return SlabBuffer();
    slot = free_.back();
    free_.pop_back();
  }
  return SlabBuffer(shared_from_this(), slot, base_ + size_t{slot} * slot_size_);
}

void BufferSlab::Release(uint32_t slot) {
  std::lock_guard<std::mutex> l(mu_);
  free_.push_back(slot);
}

size_t BufferSlab::free_slots() const {
  std::lock_guard<std::mutex> l(mu_);
  return free_.size();
}

}  // namespace shoal::storage
