#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "meta/meta_store.h"

namespace shoal::meta {

Result<Attr> MetaStore::SetLayout(const Caller& c, uint64_t ino, uint32_t chunk_size, uint32_t stripe_width) {
  std::lock_guard<std::mutex> l(write_mu_);
  ASSIGN_OR_RETURN(Attr a, LoadDir(ino));
  if (c.uid() != 0 && c.uid() != a.uid()) return Error(proto::NOT_PERMITTED, "only the owner may set the layout");
  if (chunk_size < (64u << 10) || chunk_size > (64u << 20) || (chunk_size & (chunk_size - 1)))
    return Error(proto::INVALID_ARGUMENT, "chunk size must be a power of two from 64 KiB to 64 MiB");
  if (stripe_width > 1024) return Error(proto::INVALID_ARGUMENT, "stripe width must be 0 (default) to 1024");
  a.mutable_dir_layout()->set_chunk_size(chunk_size);
  a.mutable_dir_layout()->set_stripe_width(stripe_width);
  a.set_ctime_ns(NowNs());
  return CommitInode(a);
}

}  // namespace shoal::meta
