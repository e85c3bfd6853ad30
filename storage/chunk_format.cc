#include "storage/chunk_format.h"

#include <cstring>

#include "common/crc32c.h"
#include "storage/chunk_store.h"

namespace shoal::storage {

namespace {
constexpr uint32_t kMagic = 0x4B434853;  // "SHCK"
constexpr uint32_t kFormat = 1;
constexpr uint32_t kFixedBytes = 32;

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
}  // namespace

Status CheckChunkSize(uint32_t chunk_size) {
  if (chunk_size == 0 || chunk_size % kBlockSize != 0 || chunk_size > kMaxChunkSize)
    return Error(proto::INVALID_ARGUMENT, "chunk size " + std::to_string(chunk_size) +
                                              " is not a multiple of 4 KiB up to 64 MiB");
  return Status::OK();
}

uint32_t ChunkHeaderSize(uint32_t chunk_size) {
  uint32_t raw = kFixedBytes + 4 * (chunk_size / kBlockSize);
  return (raw + kBlockSize - 1) / kBlockSize * kBlockSize;
}

void EncodeChunkHeader(const ChunkHeader& h, uint8_t* out) {
  uint32_t size = ChunkHeaderSize(h.chunk_size);
  std::memset(out, 0, size);
  Put32(out, kMagic);
  Put32(out + 4, kFormat);
  Put32(out + 8, h.chunk_size);
  Put32(out + 12, h.data_len);
  Put32(out + 16, static_cast<uint32_t>(h.version));
  Put32(out + 20, static_cast<uint32_t>(h.version >> 32));
  for (uint32_t i = 0; i < h.data_blocks(); ++i) Put32(out + kFixedBytes + 4 * i, h.crcs[i]);
  uint32_t crc = Crc32c(out, 28);
  crc = Crc32c(out + kFixedBytes, 4 * (h.chunk_size / kBlockSize), crc);
  Put32(out + 28, crc);
}

Status DecodeChunkHeader(const uint8_t* in, size_t len, uint32_t expected_chunk_size, ChunkHeader* h) {
  if (len < kFixedBytes || Get32(in) != kMagic || Get32(in + 4) != kFormat)
    return Error(proto::CHECKSUM_MISMATCH, "chunk header damaged (magic)");
  h->chunk_size = Get32(in + 8);
  if (!CheckChunkSize(h->chunk_size).ok() || len < ChunkHeaderSize(h->chunk_size))
    return Error(proto::CHECKSUM_MISMATCH, "chunk header damaged (size)");
  uint32_t crc = Crc32c(in, 28);
  crc = Crc32c(in + kFixedBytes, 4 * (h->chunk_size / kBlockSize), crc);
  if (crc != Get32(in + 28)) return Error(proto::CHECKSUM_MISMATCH, "chunk header damaged (crc)");
  if (expected_chunk_size && expected_chunk_size != h->chunk_size)
    return Error(proto::INVALID_ARGUMENT, "chunk size " + std::to_string(expected_chunk_size) +
                                              " does not match the stored " + std::to_string(h->chunk_size));
  h->data_len = Get32(in + 12);
  h->version = Get32(in + 16) | (uint64_t{Get32(in + 20)} << 32);
  if (h->data_len > h->chunk_size) return Error(proto::CHECKSUM_MISMATCH, "chunk header damaged (length)");
  h->crcs.resize(h->chunk_size / kBlockSize);
  for (uint32_t i = 0; i < h->crcs.size(); ++i) h->crcs[i] = Get32(in + kFixedBytes + 4 * i);
  return Status::OK();
}

Status VerifyBlocks(const ChunkHeader& h, uint32_t first_block, const uint8_t* data, uint32_t nbytes) {
  uint32_t stored = h.data_blocks();
  for (uint32_t b = 0; b * kBlockSize < nbytes && first_block + b < stored; ++b) {
    if (Crc32c(data + b * kBlockSize, kBlockSize) != h.crcs[first_block + b])
      return Error(proto::CHECKSUM_MISMATCH, "block " + std::to_string(first_block + b) + " fails its CRC32C");
  }
  return Status::OK();
}

}  // namespace shoal::storage
