// CRC32C (Castagnoli), hardware accelerated through ISA-L. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal {

// CRC32C of `len` bytes, continuing from `seed` (0 for a fresh checksum).
uint32_t Crc32c(const void* data, size_t len, uint32_t seed = 0);

}  // namespace shoal
