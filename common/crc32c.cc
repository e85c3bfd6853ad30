#include "common/crc32c.h"

#include <isa-l/crc.h>

namespace shoal {

// ISA-L's crc32_iscsi takes and returns the raw register value; the standard
// CRC32C pre- and post-inverts, which we do here so results match RFC 3720.
uint32_t Crc32c(const void* data, size_t len, uint32_t seed) {
  return ~crc32_iscsi(static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<int>(len), ~seed);
}

}  // namespace shoal
