// native: Shoal through libshoal's BatchReader, one per worker over one
// shared Client. Files are found once (Resolve, or readdir-plus for a
// dataset), so a read costs no metadata call.
#include <algorithm>

#include "bench/shoal_bench/backend.h"
#include "bench/shoal_bench/pattern.h"
#include "client/batch_reader.h"
#include "client/client.h"

namespace shoal::bench {
namespace {

using client::Attr;
using client::BatchReader;
using client::ProcessCaller;

// Reads are staged by Submit and started together at the next Reap, like
// SQEs pushed in one io_uring_enter: their pieces share requests per server.
class NativeQueue : public Queue {
 public:
  NativeQueue(client::Client* c, const std::vector<Attr>* attrs, uint32_t depth)
      : attrs_(attrs), reader_(c, depth), done_(depth) {
    staged_.reserve(depth);
  }

  Status Submit(const ReadOp& op) override {
    if (reader_.in_flight() + staged_.size() >= reader_.max_in_flight())
      return Error(proto::OUT_OF_RANGE, "more reads than --qd");
    staged_.push_back({&(*attrs_)[op.file], op.offset, op.length, op.buf, op.tag});
    return Status::OK();
  }

  size_t Reap(ReadDone* out, size_t max, int timeout_ms) override {
    size_t n = 0;
    if (!staged_.empty()) {
      size_t started = reader_.Submit(staged_.data(), staged_.size());
      // The cap was checked when staging, so only a bad item (never made
      // here) is refused: it fails alone.
      for (size_t i = started; i < staged_.size() && n < max; ++i) {
        NoteError("batch reader refused a read");
        out[n++] = {static_cast<uint32_t>(staged_[i].user_data), false, 0};
      }
      staged_.clear();
      if (n > 0) return n;
    }
    n = reader_.Reap(done_.data(), std::min(max, done_.size()), 1, timeout_ms);
    for (size_t i = 0; i < n; ++i) {
      const auto& c = done_[i];
      out[i] = {static_cast<uint32_t>(c.user_data), c.status.ok(), c.bytes};
      if (!c.status.ok()) NoteError(c.status.ToString());
    }
    return n;
  }

 private:
  const std::vector<Attr>* attrs_;
  BatchReader reader_;
  std::vector<BatchReader::Item> staged_;
  std::vector<BatchReader::Completion> done_;
};

class NativeBackend : public Backend {
 public:
  explicit NativeBackend(std::unique_ptr<client::Client> c) : client_(std::move(c)) {}

  Result<std::vector<FileEntry>> List(const std::string& path, bool dataset) override {
    std::vector<FileEntry> files;
    attrs_.clear();
    ASSIGN_OR_RETURN(Attr a, client_->Resolve(ProcessCaller(), path));
    if (!dataset) {
      if (a.type() != proto::REGULAR) return Error(proto::INVALID_ARGUMENT, path + " is not a regular file");
      files.push_back({path, a.size(), 0});
      attrs_.push_back(a);
      return files;
    }
    if (a.type() != proto::DIRECTORY) return Error(proto::NOT_DIRECTORY, path + " is not a directory");
    std::vector<std::pair<uint64_t, Attr>> found;
    std::string after;
    for (;;) {
      ASSIGN_OR_RETURN(proto::ReadDirRsp page, client_->ReadDir(ProcessCaller(), a.ino(), after, 1000, true));
      for (const auto& e : page.entries()) {
        uint64_t index;
        if (DatasetFileIndex(e.name(), &index) && e.attr().type() == proto::REGULAR) found.emplace_back(index, e.attr());
      }
      if (page.eof() || page.entries_size() == 0) break;
      after = page.entries(page.entries_size() - 1).name();
    }
    std::sort(found.begin(), found.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (auto& [index, attr] : found) {
      files.push_back({path + "/" + DatasetFileName(index), attr.size(), index});
      attrs_.push_back(std::move(attr));
    }
    return files;
  }

  Result<std::unique_ptr<Queue>> NewQueue(const std::vector<FileEntry>* files, uint32_t depth, int, int) override {
    if (files->size() != attrs_.size()) return Error(proto::INTERNAL, "queue made for a file list this backend did not list");
    return std::unique_ptr<Queue>(new NativeQueue(client_.get(), &attrs_, depth));
  }

  Status MakeDir(const std::string& path) override {
    ASSIGN_OR_RETURN(Attr dir, client_->Resolve(ProcessCaller(), "/"));
    for (size_t start = 0; start < path.size();) {
      size_t end = path.find('/', start);
      if (end == std::string::npos) end = path.size();
      std::string name = path.substr(start, end - start);
      start = end + 1;
      if (name.empty()) continue;
      Result<Attr> next = client_->Lookup(ProcessCaller(), dir.ino(), name);
      if (!next.ok() && next.status().code() == proto::NOT_FOUND)
        next = client_->Mkdir(ProcessCaller(), dir.ino(), name, 0755);
      if (!next.ok()) return next.status();
      dir = *next;
    }
    return Status::OK();
  }

  Status MakeFile(const std::string& path, uint64_t index, uint64_t size) override {
    ASSIGN_OR_RETURN(auto parent, client_->ResolveParent(ProcessCaller(), path));
    Status gone = client_->Unlink(ProcessCaller(), parent.first.ino(), parent.second);
    if (!gone.ok() && gone.code() != proto::NOT_FOUND) return gone;
    ASSIGN_OR_RETURN(Attr f, client_->Create(ProcessCaller(), parent.first.ino(), parent.second, 0644, true));
    std::vector<uint8_t> buf(8 << 20);
    for (uint64_t off = 0; off < size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      FillPattern(index, off, buf.data(), n);
      ASSIGN_OR_RETURN(size_t w, client_->Write(f, off, n, buf.data()));
      if (w != n) return Error(proto::IO_ERROR, "short write to " + path);
      off += n;
    }
    return client_->UpdateLength(f.ino(), size).status();
  }

 private:
  std::unique_ptr<client::Client> client_;
  std::vector<Attr> attrs_;  // the listed files', in list order
};

}  // namespace

Result<std::unique_ptr<Backend>> NewNativeBackend(const NativeOptions& o) {
  client::ClientOptions co;
  co.meta_address = o.meta_address;
  co.cluster_id = o.cluster_id;
  co.cluster_key = o.cluster_key;
  ASSIGN_OR_RETURN(auto c, client::Client::Connect(co));
  return std::unique_ptr<Backend>(new NativeBackend(std::move(c)));
}

}  // namespace shoal::bench
