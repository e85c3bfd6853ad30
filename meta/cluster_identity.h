// The identity of a cluster in meta's database: a random UUID written once,
// by `shoal-meta --init`, and checked at every later start.
//
// Why: a database lost or pointed at the wrong directory must not quietly
// become a fresh namespace — its inode numbers would restart at 2 and name
// chunks that other files left on the targets. So a start without --init
// refuses a missing or empty database, and --init refuses a database that
// already holds anything. Storage servers learn the UUID when they register
// and refuse to serve a target stamped for another cluster.
//
// Errors: INVALID_ARGUMENT with a message naming the directory and what to do.
#pragma once

#include <memory>
#include <string>

#include "meta/kv.h"

namespace shoal::meta {

// Opens the RocksDB database in `dir`. Without `init`, a directory that
// holds no database is refused (it is not created). With `init`, a missing
// or empty directory (or one holding an empty database left by an
// initialisation that did not finish) is accepted; a directory holding other
// files is refused.
Result<std::unique_ptr<Kv>> OpenMetaDatabase(const std::string& dir, bool init);

// The cluster UUID stored in `kv`. INVALID_ARGUMENT when there is none
// (`where` names the database in the message).
Result<std::string> LoadClusterUuid(Kv* kv, const std::string& where);

// Initialises a new cluster: refuses a `kv` that holds any key, otherwise
// stores a new random UUID durably and returns it.
Result<std::string> InitClusterUuid(Kv* kv, const std::string& where);

}  // namespace shoal::meta
