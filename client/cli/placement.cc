#include "client/cli/placement.h"

#include <cstdio>
#include <map>

#include "client/cli/progress.h"

namespace shoal::cli {

Result<PlacementSummary> SummarisePlacement(const proto::Layout& layout, uint64_t size, const PlaceFn& place) {
  PlacementSummary s;
  if (size == 0) return s;
  const uint64_t chunk = layout.chunk_size();
  if (chunk == 0) return Error(proto::INVALID_ARGUMENT, "file has no chunk size");
  std::map<uint32_t, Share> nodes;
  std::map<std::pair<uint32_t, uint32_t>, Share> targets;
  const uint64_t count = (size + chunk - 1) / chunk;
  for (uint64_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(client::Client::Placement p, place(i));
    uint64_t bytes = std::min(chunk, size - i * chunk);
    Share& n = nodes[p.node_id];
    n.node_id = p.node_id;
    n.address = p.address;
    ++n.chunks;
    n.bytes += bytes;
    Share& t = targets[{p.node_id, p.target_id}];
    t.node_id = p.node_id;
    t.target_id = p.target_id;
    t.address = p.address;
    ++t.chunks;
    t.bytes += bytes;
  }
  s.chunks = count;
  s.bytes = size;
  for (auto& [id, n] : nodes) s.nodes.push_back(n);
  for (auto& [id, t] : targets) s.targets.push_back(t);
  return s;
}

std::string FormatPlacement(const PlacementSummary& s) {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "placement: %lu chunks on %zu targets, %zu nodes\n",
                static_cast<unsigned long>(s.chunks), s.targets.size(), s.nodes.size());
  out += line;
  auto amount = [](const Share& sh) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%6lu chunks  %12lu bytes (%s)", static_cast<unsigned long>(sh.chunks),
                  static_cast<unsigned long>(sh.bytes), HumanBytes(static_cast<double>(sh.bytes)).c_str());
    return std::string(buf);
  };
  for (const Share& n : s.nodes) {
    std::snprintf(line, sizeof line, "  node %-4u %-21s %s\n", n.node_id, n.address.c_str(), amount(n).c_str());
    out += line;
    for (const Share& t : s.targets) {
      if (t.node_id != n.node_id) continue;
      std::snprintf(line, sizeof line, "    target %-6u %-16s %s\n", t.target_id, "", amount(t).c_str());
      out += line;
    }
  }
  return out;
}

}  // namespace shoal::cli
