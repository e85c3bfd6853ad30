// shoal._native: the pybind11 binding of libshoal (see client/python/README.md).
// Every call that talks to the cluster runs with the GIL released; Python
// objects are touched only with it held (argument parsing, result objects,
// buffer views taken before and released after the reads).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <map>
#include <optional>

#include "client/python/py_client.h"
#include "client/python/py_config.h"

namespace py = pybind11;
using shoal::Result;
using shoal::Status;
using shoal::client::Attr;
using shoal::python::Session;

namespace {

PyObject* g_error = nullptr;       // shoal.ShoalError(OSError)
PyObject* g_fork_error = nullptr;  // shoal.ForkedClientError(RuntimeError)

// ShoalError(errno, message, path) with .code (the ErrorCode's name) and
// .item (the index of the failed batch item, or None).
py::object MakeError(const Status& st, const std::string& context, std::optional<size_t> item,
                     const std::string& path) {
  std::string msg = context.empty() ? st.message() : context + ": " + st.message();
  py::object type = py::reinterpret_borrow<py::object>(g_error);
  py::object e = type(st.ToErrno(), msg, path.empty() ? py::object(py::none()) : py::object(py::str(path)));
  e.attr("code") = shoal::proto::ErrorCode_Name(st.code());
  e.attr("item") = item ? py::object(py::int_(*item)) : py::object(py::none());
  return e;
}

[[noreturn]] void Throw(const py::object& e) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
  throw py::error_already_set();
}

[[noreturn]] void Raise(const Status& st, const std::string& path) { Throw(MakeError(st, "", std::nullopt, path)); }

template <typename T>
T Check(Result<T> r, const std::string& path) {
  if (!r.ok()) Raise(r.status(), path);
  return std::move(*r);
}

const char* TypeName(shoal::proto::FileType t) {
  return t == shoal::proto::DIRECTORY ? "dir" : t == shoal::proto::SYMLINK ? "link" : "file";
}

// A regular file found by walk(): its namespace path and attributes, so that
// reading it costs no lookup. Picklable (DataLoader workers under spawn).
struct File {
  std::string path;
  Attr attr;
};

// A Py_buffer held for the duration of a call; released with the GIL held.
struct View {
  Py_buffer b{};
  bool held = false;
  View() = default;
  View(const View&) = delete;
  View& operator=(const View&) = delete;
  View(View&& o) noexcept : b(o.b), held(o.held) { o.held = false; }
  ~View() {
    if (held) PyBuffer_Release(&b);
  }
};

// Torch tensors do not export the buffer protocol; their .numpy() shares the memory.
View WritableView(py::handle obj, size_t index) {
  py::object target = py::reinterpret_borrow<py::object>(obj);
  if (!PyObject_CheckBuffer(target.ptr()) && py::hasattr(target, "numpy")) target = target.attr("numpy")();
  View v;
  if (PyObject_GetBuffer(target.ptr(), &v.b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) != 0) {
    py::error_already_set err;
    throw py::value_error("buffer " + std::to_string(index) +
                          " is not a writable C-contiguous buffer (numpy array, CPU torch.Tensor, bytearray, "
                          "memoryview): " + std::string(err.what()));
  }
  v.held = true;
  return v;
}

// A path argument: str, bytes or os.PathLike.
std::string PathArg(const py::object& p) { return py::module_::import("os").attr("fsdecode")(p).cast<std::string>(); }

struct Item {
  std::string path;           // as given (for messages)
  const File* file = nullptr; // a walk() handle, else resolved by path
  uint64_t offset = 0;
  std::optional<uint64_t> length;
};

std::vector<Item> ParseItems(const py::sequence& items) {
  std::vector<Item> out;
  out.reserve(py::len(items));
  for (size_t i = 0; i < py::len(items); ++i) {
    py::object it = items[i];  // str, bytes or os.PathLike paths (os.fsdecode)
    Item item;
    py::object target = it;
    if (py::isinstance<py::tuple>(it) || py::isinstance<py::list>(it)) {
      py::sequence s = it.cast<py::sequence>();
      if (py::len(s) < 1 || py::len(s) > 3)
        throw py::value_error("item " + std::to_string(i) + ": expected (path, offset, length), path or File");
      target = s[0];
      if (py::len(s) >= 2) {
        long long off = s[1].cast<long long>();
        if (off < 0) throw py::value_error("item " + std::to_string(i) + ": negative offset");
        item.offset = static_cast<uint64_t>(off);
      }
      if (py::len(s) == 3 && !s[2].is_none()) {
        long long len = s[2].cast<long long>();
        if (len < 0) throw py::value_error("item " + std::to_string(i) + ": negative length");
        item.length = static_cast<uint64_t>(len);
      }
    }
    if (py::isinstance<File>(target)) {
      item.file = &target.cast<const File&>();
      item.path = item.file->path;
    } else {
      item.path = PathArg(target);
    }
    out.push_back(std::move(item));
  }
  return out;
}

class PyClient {
 public:
  PyClient(std::unique_ptr<Session> s, std::string config_path)
      : s_(std::move(s)), pid_(::getpid()), config_path_(std::move(config_path)) {}
  ~PyClient() {
    // In a forked child the client's threads do not exist: destroying it
    // would wait for them forever. The parent's copy is left alone.
    if (::getpid() != pid_) {
      (void)s_.release();
      return;
    }
    py::gil_scoped_release nogil;
    s_.reset();
  }

  Session& S() {
    if (::getpid() != pid_) {
      PyErr_SetString(g_fork_error, ("this shoal.Client was made in process " + std::to_string(pid_) +
                                     " and cannot be used after fork() (this is process " +
                                     std::to_string(::getpid()) + "): call shoal.connect() in the child")
                                        .c_str());
      throw py::error_already_set();
    }
    if (!s_) throw py::value_error("shoal.Client is closed");
    return *s_;
  }

  void Close() {
    Session& s = S();
    (void)s;
    py::gil_scoped_release nogil;
    s_.reset();
  }

  const std::string& config_path() const { return config_path_; }

  // Resolves every distinct path of the batch once; per item its attributes or error.
  std::vector<Result<Attr>> ResolveItems(Session& s, const std::vector<Item>& items) {
    std::vector<Result<Attr>> out;
    out.reserve(items.size());
    std::map<std::string, Result<Attr>> seen;
    for (const auto& it : items) {
      if (it.file != nullptr) {
        Status ok = s.CheckReadable(it.file->attr, it.path);
        out.push_back(ok.ok() ? Result<Attr>(it.file->attr) : Result<Attr>(ok));
        continue;
      }
      auto f = seen.find(it.path);
      if (f == seen.end()) {
        Result<Attr> r = s.Resolve(it.path);
        if (r.ok()) {
          Status ok = s.CheckReadable(*r, it.path);
          if (!ok.ok()) r = ok;
        }
        f = seen.emplace(it.path, std::move(r)).first;
      }
      out.push_back(f->second);
    }
    return out;
  }

  static std::string Describe(size_t i, const Item& it, uint64_t length) {
    return "item " + std::to_string(i) + " (" + it.path + ", offset " + std::to_string(it.offset) + ", length " +
           std::to_string(length) + ")";
  }

  // Shared by read_batch and read_batch_into: `bufs[i]` holds `lens[i]` bytes
  // for item i. Returns, per item, OK or its error (the message names the item).
  std::vector<Status> ReadInto(Session& s, const std::vector<Item>& items, const std::vector<Result<Attr>>& attrs,
                               const std::vector<uint8_t*>& bufs, const std::vector<uint64_t>& lens) {
    std::vector<Session::Read> reads(items.size());
    std::vector<Status> st(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      if (!attrs[i].ok()) {
        st[i] = attrs[i].status();
        continue;
      }
      reads[i] = {&*attrs[i], items[i].offset, static_cast<size_t>(lens[i]), bufs[i], Status(), 0};
    }
    s.ReadMany(reads);
    for (size_t i = 0; i < items.size(); ++i) {
      if (!attrs[i].ok()) continue;
      if (!reads[i].status.ok()) st[i] = reads[i].status;
      else if (reads[i].bytes < lens[i])
        st[i] = Status(shoal::proto::OUT_OF_RANGE,
                       "past end of file (" + std::to_string(attrs[i]->size()) + " bytes; got " +
                           std::to_string(reads[i].bytes) + ")");
    }
    return st;
  }

  // Raises the first failed item's error, or returns the per-item results.
  static py::list Finish(const std::vector<Item>& items, const std::vector<uint64_t>& lens,
                         const std::vector<Status>& st, std::vector<py::object> ok_values, bool raise) {
    py::list out;
    size_t failed = 0;
    std::optional<size_t> first;
    for (size_t i = 0; i < items.size(); ++i)
      if (!st[i].ok() && failed++ == 0) first = i;
    if (raise && first) {
      size_t i = *first;
      std::string ctx = Describe(i, items[i], lens[i]);
      if (failed > 1) ctx += " (and " + std::to_string(failed - 1) + " more failed)";
      Throw(MakeError(st[i], ctx, i, items[i].path));
    }
    for (size_t i = 0; i < items.size(); ++i)
      out.append(st[i].ok() ? ok_values[i] : MakeError(st[i], Describe(i, items[i], lens[i]), i, items[i].path));
    return out;
  }

  py::list ReadBatch(const py::sequence& pyitems, const std::string& errors) {
    bool raise = ParseErrors(errors);
    Session& s = S();
    std::vector<Item> items = ParseItems(pyitems);
    std::vector<Result<Attr>> attrs;
    {
      py::gil_scoped_release nogil;
      attrs = ResolveItems(s, items);
    }
    std::vector<uint64_t> lens(items.size(), 0);
    std::vector<py::object> out(items.size());
    std::vector<uint8_t*> bufs(items.size(), nullptr);
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].length) {
        lens[i] = *items[i].length;
      } else if (attrs[i].ok()) {
        if (items[i].offset > attrs[i]->size())
          attrs[i] = Status(shoal::proto::OUT_OF_RANGE, "offset past end of file (" +
                                                            std::to_string(attrs[i]->size()) + " bytes)");
        else
          lens[i] = attrs[i]->size() - items[i].offset;
      }
      if (!attrs[i].ok()) lens[i] = 0;
      PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(lens[i]));
      if (b == nullptr) throw py::error_already_set();
      out[i] = py::reinterpret_steal<py::object>(b);
      bufs[i] = reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(b));
    }
    std::vector<Status> st;
    {
      py::gil_scoped_release nogil;
      st = ReadInto(s, items, attrs, bufs, lens);
    }
    return Finish(items, lens, st, std::move(out), raise);
  }

  py::list ReadBatchInto(const py::sequence& pyitems, const py::sequence& buffers, const std::string& errors) {
    bool raise = ParseErrors(errors);
    Session& s = S();
    std::vector<Item> items = ParseItems(pyitems);
    if (py::len(buffers) != items.size())
      throw py::value_error(std::to_string(items.size()) + " items but " + std::to_string(py::len(buffers)) +
                            " buffers");
    std::vector<View> views;
    views.reserve(items.size());
    std::vector<uint8_t*> bufs(items.size());
    std::vector<uint64_t> lens(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      views.push_back(WritableView(buffers[i], i));
      uint64_t cap = static_cast<uint64_t>(views.back().b.len);
      lens[i] = items[i].length.value_or(cap);
      if (lens[i] > cap)
        throw py::value_error(Describe(i, items[i], lens[i]) + ": buffer holds only " + std::to_string(cap) +
                              " bytes");
      bufs[i] = static_cast<uint8_t*>(views.back().b.buf);
    }
    std::vector<Status> st;
    {
      py::gil_scoped_release nogil;
      auto attrs = ResolveItems(s, items);
      st = ReadInto(s, items, attrs, bufs, lens);
    }
    std::vector<py::object> counts;
    for (auto l : lens) counts.push_back(py::int_(l));
    return Finish(items, lens, st, std::move(counts), raise);
  }

  py::bytes Read(const py::object& path_arg) {
    const std::string path = PathArg(path_arg);
    Session& s = S();
    Result<Attr> a = Status(shoal::proto::INTERNAL, "unset");
    {
      py::gil_scoped_release nogil;
      a = s.Resolve(path);
      if (a.ok()) {
        Status ok = s.CheckReadable(*a, path);
        if (!ok.ok()) a = ok;
      }
    }
    Attr file = Check(std::move(a), path);
    PyObject* b = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(file.size()));
    if (b == nullptr) throw py::error_already_set();
    py::bytes out = py::reinterpret_steal<py::bytes>(b);
    Status st;
    {
      py::gil_scoped_release nogil;
      st = s.ReadWhole(file, reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(b)));
    }
    if (!st.ok()) Raise(st, path);
    return out;
  }

  uint64_t Write(const py::object& path_arg, py::handle data) {
    const std::string path = PathArg(path_arg);
    Session& s = S();
    View v;
    if (PyObject_GetBuffer(data.ptr(), &v.b, PyBUF_C_CONTIGUOUS) != 0) throw py::error_already_set();
    v.held = true;
    Result<uint64_t> n = Status(shoal::proto::INTERNAL, "unset");
    {
      py::gil_scoped_release nogil;
      n = s.WriteWhole(path, static_cast<const uint8_t*>(v.b.buf), static_cast<size_t>(v.b.len));
    }
    return Check(std::move(n), path);
  }

  py::dict Stat(const py::object& path_arg) {
    const std::string path = PathArg(path_arg);
    Session& s = S();
    Result<Attr> a = Status(shoal::proto::INTERNAL, "unset");
    {
      py::gil_scoped_release nogil;
      a = s.Resolve(path);
    }
    return AttrDict(Check(std::move(a), path));
  }

  std::vector<std::string> ListDir(const py::object& path_arg) {
    const std::string path = PathArg(path_arg);
    Session& s = S();
    Result<std::vector<Session::Entry>> r = Status(shoal::proto::INTERNAL, "unset");
    {
      py::gil_scoped_release nogil;
      r = s.List(path);
    }
    std::vector<std::string> names;
    for (const auto& e : Check(std::move(r), path)) names.push_back(e.path.substr(e.path.rfind('/') + 1));
    return names;
  }

  std::vector<File> Walk(const py::object& root_arg) {
    const std::string root = PathArg(root_arg);
    Session& s = S();
    Result<std::vector<Session::Entry>> r = Status(shoal::proto::INTERNAL, "unset");
    {
      py::gil_scoped_release nogil;
      r = s.Walk(root);
    }
    std::vector<File> out;
    for (auto& e : Check(std::move(r), root)) out.push_back({std::move(e.path), std::move(e.attr)});
    return out;
  }

  static py::dict AttrDict(const Attr& a) {
    py::dict d;
    d["ino"] = a.ino();
    d["type"] = TypeName(a.type());
    d["mode"] = a.mode();
    d["uid"] = a.uid();
    d["gid"] = a.gid();
    d["size"] = a.size();
    d["nlink"] = a.nlink();
    d["mtime_ns"] = a.mtime_ns();
    d["ctime_ns"] = a.ctime_ns();
    if (a.type() == shoal::proto::REGULAR) {
      d["chunk_size"] = a.layout().chunk_size();
      d["stripe_width"] = a.layout().stripe_width();
    }
    return d;
  }

 private:
  static bool ParseErrors(const std::string& errors) {
    if (errors == "raise") return true;
    if (errors == "return") return false;
    throw py::value_error("errors must be 'raise' or 'return', not '" + errors + "'");
  }

  std::unique_ptr<Session> s_;
  pid_t pid_;
  std::string config_path_;
};

std::unique_ptr<PyClient> Connect(const std::string& config, const py::dict& overrides) {
  auto loaded = Check(shoal::python::LoadClientConfig(config), config);
  for (auto kv : overrides) {
    std::string k = py::str(kv.first);
    if (kv.second.is_none()) continue;
    int v = kv.second.cast<int>();
    if (v < 1) throw py::value_error(k + " must be at least 1");
    if (k == "io_timeout_ms") loaded.options.io_timeout_ms = v;
    else if (k == "io_attempts") loaded.options.io_attempts = v;
    else if (k == "meta_timeout_ms") loaded.options.meta_timeout_ms = v;
    else if (k == "event_loops") loaded.options.event_loops = v;
    else throw py::type_error("connect() got an unexpected option '" + k + "'");
  }
  Result<std::unique_ptr<Session>> s = Status(shoal::proto::INTERNAL, "unset");
  {
    py::gil_scoped_release nogil;
    s = Session::Connect(loaded.options);
  }
  if (!s.ok()) Throw(MakeError(s.status(), "connecting to " + loaded.options.meta_address + " (config " +
                                               loaded.path + ")", std::nullopt, ""));
  return std::make_unique<PyClient>(std::move(*s), loaded.path);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "libshoal for Python: see the shoal package";
  g_error = PyErr_NewException("shoal.ShoalError", PyExc_OSError, nullptr);
  m.attr("ShoalError") = py::handle(g_error);
  g_fork_error = PyErr_NewException("shoal.ForkedClientError", PyExc_RuntimeError, nullptr);
  m.attr("ForkedClientError") = py::handle(g_fork_error);

  py::class_<File>(m, "File")
      .def_property_readonly("path", [](const File& f) { return f.path; })
      .def_property_readonly("size", [](const File& f) { return f.attr.size(); })
      .def_property_readonly("ino", [](const File& f) { return f.attr.ino(); })
      .def("stat", [](const File& f) { return PyClient::AttrDict(f.attr); })
      .def("__repr__", [](const File& f) { return "shoal.File('" + f.path + "', size=" + std::to_string(f.attr.size()) + ")"; })
      .def(py::pickle([](const File& f) { return py::make_tuple(f.path, py::bytes(f.attr.SerializeAsString())); },
                      [](py::tuple t) {
                        File f;
                        f.path = t[0].cast<std::string>();
                        if (!f.attr.ParseFromString(t[1].cast<std::string>())) throw py::value_error("bad shoal.File state");
                        return f;
                      }));

  py::class_<PyClient>(m, "Client")
      .def_property_readonly("config_path", &PyClient::config_path)
      .def("read_batch", &PyClient::ReadBatch, py::arg("items"), py::arg("errors") = "raise")
      .def("read_batch_into", &PyClient::ReadBatchInto, py::arg("items"), py::arg("buffers"),
           py::arg("errors") = "raise")
      .def("read", &PyClient::Read, py::arg("path"))
      .def("write", &PyClient::Write, py::arg("path"), py::arg("data"))
      .def("stat", &PyClient::Stat, py::arg("path"))
      .def("listdir", &PyClient::ListDir, py::arg("path"))
      .def("walk", &PyClient::Walk, py::arg("root"))
      .def("close", &PyClient::Close)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyClient& c, py::args) { c.Close(); });

  m.def("_connect", &Connect, py::arg("config"), py::arg("overrides"));
}
