#include "storage/target_stamp.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "common/random_id.h"

namespace shoal::storage {
namespace {

constexpr int kFormatVersion = 1;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Parses all of `s` as an unsigned number in `base`; false on anything else.
bool ParseU64(std::string_view s, int base, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s) {
    bool digit = c >= '0' && c <= '9';
    bool hex = base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    if (!digit && !hex) return false;
  }
  std::string str(s);
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(str.c_str(), &end, base);
  if (errno != 0 || end != str.c_str() + str.size()) return false;
  *out = v;
  return true;
}

Status Bad(const std::string& what) { return Error(proto::INVALID_ARGUMENT, "bad target stamp: " + what); }

}  // namespace

std::string EncodeTargetStamp(const TargetStamp& s) {
  char incarnation[17];
  std::snprintf(incarnation, sizeof(incarnation), "%016llx", static_cast<unsigned long long>(s.incarnation));
  return "# Shoal target stamp. Written by shoal-storage --format; do not edit.\n"
         "format = " + std::to_string(kFormatVersion) + "\n" +
         "cluster_uuid = " + s.cluster_uuid + "\n" +
         "target_id = " + std::to_string(s.target_id) + "\n" +
         "incarnation = " + incarnation + "\n" +
         "lost_below_inode = " + std::to_string(s.lost_below_inode) + "\n";
}

Result<TargetStamp> ParseTargetStamp(std::string_view text) {
  std::map<std::string, std::string, std::less<>> kv;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = Trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) return Bad("line '" + std::string(line) + "' is not key = value");
    std::string key(Trim(line.substr(0, eq)));
    if (!kv.emplace(key, std::string(Trim(line.substr(eq + 1)))).second) return Bad("key '" + key + "' repeated");
  }
  for (const auto& [key, value] : kv) {
    if (key != "format" && key != "cluster_uuid" && key != "target_id" && key != "incarnation" &&
        key != "lost_below_inode")
      return Bad("unknown key '" + key + "'");
  }
  for (const char* key : {"format", "cluster_uuid", "target_id", "incarnation", "lost_below_inode"})
    if (!kv.count(key)) return Bad(std::string("missing key '") + key + "'");
  uint64_t format = 0;
  if (!ParseU64(kv["format"], 10, &format) || format != kFormatVersion)
    return Bad("format '" + kv["format"] + "' is not " + std::to_string(kFormatVersion));
  TargetStamp s;
  s.cluster_uuid = kv["cluster_uuid"];
  if (!IsUuid(s.cluster_uuid)) return Bad("cluster_uuid '" + s.cluster_uuid + "' is not a UUID");
  uint64_t id = 0;
  if (!ParseU64(kv["target_id"], 10, &id) || id == 0 || id > UINT32_MAX)
    return Bad("target_id '" + kv["target_id"] + "' is not a number in 1..2^32-1");
  s.target_id = static_cast<uint32_t>(id);
  if (kv["incarnation"].size() != 16 || !ParseU64(kv["incarnation"], 16, &s.incarnation) || s.incarnation == 0)
    return Bad("incarnation '" + kv["incarnation"] + "' is not 16 hex digits, not all zero");
  if (!ParseU64(kv["lost_below_inode"], 10, &s.lost_below_inode))
    return Bad("lost_below_inode '" + kv["lost_below_inode"] + "' is not a number");
  return s;
}

std::string TargetStampPath(const std::string& dir) { return dir + "/" + kTargetStampName; }

Result<std::optional<TargetStamp>> ReadTargetStamp(FileEnv* env, const std::string& dir) {
  const std::string path = TargetStampPath(dir);
  auto text = ReadWholeFile(env, path);
  if (text.status().code() == proto::NOT_FOUND) return std::optional<TargetStamp>();
  if (!text.ok()) return text.status();
  auto stamp = ParseTargetStamp(*text);
  if (!stamp.ok()) return Error(stamp.status().code(), path + ": " + stamp.status().message());
  return std::optional<TargetStamp>(std::move(stamp).value());
}

Status WriteTargetStamp(FileEnv* env, const std::string& dir, const TargetStamp& stamp) {
  return WriteFileDurably(env, TargetStampPath(dir), EncodeTargetStamp(stamp));
}

}  // namespace shoal::storage
