// meta-bench: mdtest-style metadata phases on any directory (a Shoal mount,
// a local disk), from N processes, reported as operations per second.
//
// Phases (each process works in its own subdirectory p<i> of a fresh run
// directory, F files each; all processes start a phase together and the
// phase's time is from that start until the last one finished):
//   create     open(O_CREAT|O_EXCL|O_WRONLY) + close (mdtest's default: empty files)
//   stat       stat of every file
//   read       open + read (up to 4 KiB) + close of every file
//   readdir    an `ls -l`: readdir of the process's directory plus lstat of every entry
//   remove     unlink of every file
// Then the small-file tree (unless --tree-dirs 0): D directories of T files of
// S bytes, the directories dealt out to the processes:
//   tree-create  mkdir, then per file open(O_CREAT|O_EXCL) + write S bytes + close
//   tree-walk    `ls -lR`: readdir + lstat of every directory and file
//   tree-remove  unlink every file, rmdir every directory
//
// Nothing is cached by meta-bench itself; what the kernel caches (attributes,
// names) is part of what is measured, as with mdtest on one node.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string path;
  int procs = 1;
  uint64_t files = 1000;  // per process
  std::string phases = "create,stat,read,readdir,remove";
  uint64_t tree_dirs = 0;
  uint64_t tree_files = 1000;
  uint64_t tree_size = 4096;
  std::string json;
  bool keep = false;
};

const std::vector<std::string> kFilePhases = {"create", "stat", "read", "readdir", "remove"};
const std::vector<std::string> kTreePhases = {"tree-create", "tree-walk", "tree-remove"};

// Shared between the parent and its children (an anonymous shared mapping).
struct Shared {
  pthread_barrier_t start;  // everyone (children + parent) at a phase's start
  pthread_barrier_t end;    // everyone at its end
  uint64_t ops[64][8];      // per process, per phase index
  double began[64][8];      // CLOCK_MONOTONIC (steady_clock) seconds: one clock for all processes
  double ended[64][8];
  uint64_t errors[64][8];
  int first_errno[64][8];
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string FileName(const std::string& dir, uint64_t i) {
  char buf[32];
  snprintf(buf, sizeof(buf), "/f%08llu", static_cast<unsigned long long>(i));
  return dir + buf;
}

// One process's work for one phase; returns (ops, errors, first errno).
struct Tally {
  uint64_t ops = 0, errors = 0;
  int first_errno = 0;
  void Fail() {
    ++errors;
    if (!first_errno) first_errno = errno ? errno : EIO;
  }
};

// An `ls -l` of one directory: readdir plus lstat of every entry; the
// subdirectories found go to *subdirs when given.
void ListDir(const std::string& dir, Tally& t, std::vector<std::string>* subdirs) {
  DIR* d = opendir(dir.c_str());
  if (!d) return t.Fail();
  ++t.ops;
  while (dirent* e = readdir(d)) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    std::string p = dir + "/" + e->d_name;
    struct stat st;
    if (lstat(p.c_str(), &st) != 0) {
      t.Fail();
      continue;
    }
    ++t.ops;
    if (subdirs && S_ISDIR(st.st_mode)) subdirs->push_back(p);
  }
  closedir(d);
}

Tally RunFilePhase(const std::string& phase, const std::string& dir, uint64_t files) {
  Tally t;
  char buf[4096];
  if (phase == "readdir") {
    ListDir(dir, t, nullptr);
    return t;
  }
  for (uint64_t i = 0; i < files; ++i) {
    std::string f = FileName(dir, i);
    if (phase == "create") {
      int fd = open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0 || close(fd) != 0) { t.Fail(); continue; }
    } else if (phase == "stat") {
      struct stat st;
      if (stat(f.c_str(), &st) != 0) { t.Fail(); continue; }
    } else if (phase == "read") {
      int fd = open(f.c_str(), O_RDONLY);
      if (fd < 0) { t.Fail(); continue; }
      bool ok = read(fd, buf, sizeof(buf)) >= 0;
      if (close(fd) != 0 || !ok) { t.Fail(); continue; }
    } else if (phase == "remove") {
      if (unlink(f.c_str()) != 0) { t.Fail(); continue; }
    }
    ++t.ops;
  }
  return t;
}

std::string TreeDir(const std::string& root, uint64_t d) {
  char buf[32];
  snprintf(buf, sizeof(buf), "/d%05llu", static_cast<unsigned long long>(d));
  return root + buf;
}

Tally RunTreePhase(const std::string& phase, const std::string& root, const Options& o, int me) {
  Tally t;
  std::vector<char> data(o.tree_size, 'x');
  for (uint64_t d = me; d < o.tree_dirs; d += o.procs) {
    std::string dir = TreeDir(root, d);
    if (phase == "tree-create") {
      if (mkdir(dir.c_str(), 0755) != 0) { t.Fail(); continue; }
      ++t.ops;
      for (uint64_t i = 0; i < o.tree_files; ++i) {
        std::string f = FileName(dir, i);
        int fd = open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) { t.Fail(); continue; }
        bool ok = data.empty() || write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
        if (close(fd) != 0 || !ok) { t.Fail(); continue; }
        ++t.ops;
      }
    } else if (phase == "tree-walk") {
      ListDir(dir, t, nullptr);
    } else if (phase == "tree-remove") {
      for (uint64_t i = 0; i < o.tree_files; ++i) {
        if (unlink(FileName(dir, i).c_str()) != 0) t.Fail();
        else ++t.ops;
      }
      if (rmdir(dir.c_str()) != 0) t.Fail();
      else ++t.ops;
    }
  }
  return t;
}

struct PhaseResult {
  std::string name;
  uint64_t ops = 0, errors = 0;
  int first_errno = 0;
  double seconds = 0;
};

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app("meta-bench: mdtest-style metadata operations per second on any directory");
  app.add_option("--path", o.path, "directory to work in (a run directory is made and removed inside it)")->required();
  app.add_option("--procs", o.procs, "processes working at once")->check(CLI::Range(1, 64));
  app.add_option("--files", o.files, "files per process for create/stat/read/readdir/remove");
  app.add_option("--phases", o.phases, "comma-separated subset of create,stat,read,readdir,remove ('' for none)");
  app.add_option("--tree-dirs", o.tree_dirs, "small-file tree: directories (0: no tree phases)");
  app.add_option("--tree-files", o.tree_files, "small-file tree: files per directory");
  app.add_option("--tree-size", o.tree_size, "small-file tree: bytes per file")->check(CLI::Range(0, 64 << 20));
  app.add_option("--json", o.json, "write the results as one JSON object to this file");
  app.add_flag("--keep", o.keep, "leave the run directory (and the tree) behind");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::string> phases = Split(o.phases);
  for (const auto& p : phases) {
    bool known = false;
    for (const auto& k : kFilePhases) known |= p == k;
    if (!known) {
      std::cerr << "meta-bench: unknown phase '" << p << "' (create, stat, read, readdir, remove)\n";
      return 2;
    }
  }
  // Phases run in their natural order whatever order they were named in.
  std::vector<std::string> order;
  for (const auto& k : kFilePhases)
    for (const auto& p : phases)
      if (p == k) { order.push_back(k); break; }
  if (!o.tree_dirs) o.tree_files = 0;
  std::vector<std::string> all = order;
  if (o.tree_dirs) all.insert(all.end(), kTreePhases.begin(), kTreePhases.end());
  if (all.empty()) {
    std::cerr << "meta-bench: nothing to do (no phases and --tree-dirs 0)\n";
    return 2;
  }

  struct stat st;
  if (stat(o.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::cerr << "meta-bench: --path " << o.path << " is not a directory: " << strerror(errno) << "\n";
    return 2;
  }
  std::string run = o.path + "/meta-bench." + std::to_string(getpid());
  if (mkdir(run.c_str(), 0755) != 0) {
    std::cerr << "meta-bench: mkdir " << run << ": " << strerror(errno) << "\n";
    return 1;
  }
  std::string tree = run + "/tree";
  if (o.tree_dirs && mkdir(tree.c_str(), 0755) != 0) {
    std::cerr << "meta-bench: mkdir " << tree << ": " << strerror(errno) << "\n";
    return 1;
  }
  for (int i = 0; i < o.procs; ++i) {
    std::string d = run + "/p" + std::to_string(i);
    if (mkdir(d.c_str(), 0755) != 0) {
      std::cerr << "meta-bench: mkdir " << d << ": " << strerror(errno) << "\n";
      return 1;
    }
  }

  auto* shared = static_cast<Shared*>(
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  if (shared == MAP_FAILED) {
    perror("meta-bench: mmap");
    return 1;
  }
  memset(shared, 0, sizeof(Shared));
  pthread_barrierattr_t ba;
  pthread_barrierattr_init(&ba);
  pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
  pthread_barrier_init(&shared->start, &ba, o.procs + 1);
  pthread_barrier_init(&shared->end, &ba, o.procs + 1);

  std::vector<pid_t> kids;
  for (int me = 0; me < o.procs; ++me) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("meta-bench: fork");
      // The children already started wait at barriers that can no longer fill.
      for (pid_t k : kids) kill(k, SIGKILL);
      return 1;
    }
    if (pid == 0) {
      std::string dir = run + "/p" + std::to_string(me);
      for (size_t i = 0; i < all.size(); ++i) {
        pthread_barrier_wait(&shared->start);
        shared->began[me][i] = Now();
        errno = 0;
        Tally t = i < order.size() ? RunFilePhase(all[i], dir, o.files) : RunTreePhase(all[i], tree, o, me);
        shared->ops[me][i] = t.ops;
        shared->errors[me][i] = t.errors;
        shared->first_errno[me][i] = t.first_errno;
        shared->ended[me][i] = Now();
        pthread_barrier_wait(&shared->end);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }

  std::vector<PhaseResult> results;
  for (size_t i = 0; i < all.size(); ++i) {
    pthread_barrier_wait(&shared->start);
    pthread_barrier_wait(&shared->end);
    // From the first process's start to the last one's end, as each measured
    // it (this process may be scheduled late on a busy machine).
    PhaseResult r;
    r.name = all[i];
    double first = shared->began[0][i], last = shared->ended[0][i];
    for (int me = 0; me < o.procs; ++me) {
      first = std::min(first, shared->began[me][i]);
      last = std::max(last, shared->ended[me][i]);
    }
    r.seconds = last - first;
    for (int me = 0; me < o.procs; ++me) {
      r.ops += shared->ops[me][i];
      r.errors += shared->errors[me][i];
      if (!r.first_errno) r.first_errno = shared->first_errno[me][i];
    }
    results.push_back(r);
  }
  int rc = 0;
  for (pid_t k : kids) {
    int status = 0;
    if (waitpid(k, &status, 0) != k || !WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }

  if (!o.keep) {
    for (int i = 0; i < o.procs; ++i) {
      std::string d = run + "/p" + std::to_string(i);
      // Files left by a failed or skipped remove phase.
      if (DIR* dd = opendir(d.c_str())) {
        while (dirent* e = readdir(dd))
          if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink((d + "/" + e->d_name).c_str());
        closedir(dd);
      }
      rmdir(d.c_str());
    }
    rmdir(tree.c_str());
    if (rmdir(run.c_str()) != 0) std::cerr << "meta-bench: could not remove " << run << ": " << strerror(errno) << "\n";
  }

  printf("meta-bench: %s, %d process(es), %llu files each", o.path.c_str(), o.procs,
         static_cast<unsigned long long>(o.files));
  if (o.tree_dirs)
    printf("; tree %llu x %llu files of %llu B", static_cast<unsigned long long>(o.tree_dirs),
           static_cast<unsigned long long>(o.tree_files), static_cast<unsigned long long>(o.tree_size));
  printf("\n%-12s %10s %10s %12s %8s\n", "phase", "ops", "seconds", "ops/s", "errors");
  for (const auto& r : results) {
    printf("%-12s %10llu %10.3f %12.0f %8llu", r.name.c_str(), static_cast<unsigned long long>(r.ops), r.seconds,
           r.seconds > 0 ? r.ops / r.seconds : 0.0, static_cast<unsigned long long>(r.errors));
    if (r.errors) printf("  (first: %s)", strerror(r.first_errno));
    printf("\n");
    if (r.errors) rc = 1;
  }
  if (!o.json.empty()) {
    std::ofstream j(o.json);
    j << "{\"path\":\"" << o.path << "\",\"procs\":" << o.procs << ",\"files\":" << o.files
      << ",\"tree_dirs\":" << o.tree_dirs << ",\"tree_files\":" << o.tree_files << ",\"tree_size\":" << o.tree_size
      << ",\"phases\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      char rate[64];
      snprintf(rate, sizeof(rate), "%.1f", r.seconds > 0 ? r.ops / r.seconds : 0.0);
      j << (i ? "," : "") << "{\"name\":\"" << r.name << "\",\"ops\":" << r.ops << ",\"seconds\":" << r.seconds
        << ",\"ops_per_s\":" << rate << ",\"errors\":" << r.errors << "}";
    }
    j << "]}\n";
    if (!j) {
      std::cerr << "meta-bench: writing " << o.json << " failed\n";
      rc = 1;
    }
  }
  return rc;
}
