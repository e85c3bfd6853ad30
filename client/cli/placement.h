// Where a file's chunks live, summed per storage target and per node, for
// `shoal stat`. Computed from the layout and the cluster table (no storage
// call): every chunk below the file's size counts, holes included, with the
// bytes of the file it covers (the last chunk only up to the end).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "client/client.h"
#include "common/status.h"

namespace shoal::cli {

struct Share {
  uint32_t node_id = 0;
  uint32_t target_id = 0;  // 0 in a per-node row
  std::string address;
  uint64_t chunks = 0;
  uint64_t bytes = 0;
};

struct PlacementSummary {
  uint64_t chunks = 0;
  uint64_t bytes = 0;
  std::vector<Share> nodes;    // by node id
  std::vector<Share> targets;  // by node id, then target id
};

using PlaceFn = std::function<Result<client::Client::Placement>(uint64_t index)>;

Result<PlacementSummary> SummarisePlacement(const proto::Layout& layout, uint64_t size, const PlaceFn& place);

// The summary as `shoal stat` prints it: one line per node, its targets indented.
std::string FormatPlacement(const PlacementSummary& s);

}  // namespace shoal::cli
