// The stored form of a chunk: a header (magic, chunk size, data length,
// version, one CRC32C per 4 KiB block, and a CRC of the header itself), padded
// to a multiple of 4 KiB, followed by the data blocks. Little-endian.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace shoal::storage {

struct ChunkHeader {
  uint32_t chunk_size = 0;
  uint32_t data_len = 0;  // bytes written; later bytes read as zeros
  uint64_t version = 0;   // increases with every committed write
  std::vector<uint32_t> crcs;  // one per block of the chunk (data_len rounded up)

  uint32_t data_blocks() const { return (data_len + 4095) / 4096; }
};

// Encodes into `out`, which holds ChunkHeaderSize(h.chunk_size) bytes.
void EncodeChunkHeader(const ChunkHeader& h, uint8_t* out);
// CHECKSUM_MISMATCH when the header is damaged, INVALID_ARGUMENT when its
// chunk size differs from `expected_chunk_size` (0: any).
Status DecodeChunkHeader(const uint8_t* in, size_t len, uint32_t expected_chunk_size, ChunkHeader* h);

// Verifies the stored blocks among `nbytes` of `data`, which starts at block
// `first_block` of the chunk. Blocks past data_len are not stored: skipped.
Status VerifyBlocks(const ChunkHeader& h, uint32_t first_block, const uint8_t* data, uint32_t nbytes);

}  // namespace shoal::storage
