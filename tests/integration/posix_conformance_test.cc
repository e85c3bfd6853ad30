// POSIX conformance on the real FUSE mount, side by side with a local
// directory: a table of scenarios, each run as root and as an unprivileged
// user in both trees. For every scenario the two trees must give the same
// errno for every call and leave the same attributes (mode with type, owner,
// nlink, size, rdev, content) and the same set of changed times.
//
// Times: before the operation every inspected path gets explicit times in
// the past (utimensat), and the test waits (a condition, not a sleep) until
// the coarse clock has passed the ctime that set; then "changed" is exact.
// The local tree is a noatime bind mount: Shoal's atime policy is noatime
// (meta/README.md), so reads must move atime on neither side.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

constexpr uid_t kUser = 65534;   // the unprivileged actor
constexpr gid_t kGroup = 65534;  // its only group
constexpr gid_t kOtherGroup = 4321;  // a group it is not in

struct Actor {
  const char* name;
  uid_t uid;
  gid_t gid;
};
constexpr Actor kRoot{"root", 0, 0};
constexpr Actor kUnpriv{"user", kUser, kGroup};

// Every call of an operation appends its errno (0 on success).
using Errs = std::vector<int>;
int E(long rc) { return rc < 0 ? errno : 0; }

enum class Type { kReg, kDir, kSym, kFifo, kChr, kBlk, kSock };
const std::vector<Type> kTypes = {Type::kReg, Type::kDir, Type::kSym, Type::kFifo, Type::kChr, Type::kBlk, Type::kSock};
const char* Name(Type t) {
  switch (t) {
    case Type::kReg: return "reg";
    case Type::kDir: return "dir";
    case Type::kSym: return "symlink";
    case Type::kFifo: return "fifo";
    case Type::kChr: return "chr";
    case Type::kBlk: return "blk";
    case Type::kSock: return "sock";
  }
  return "?";
}

// Creates a file of type `t` at `path` (relative to the working directory).
int Make(Type t, const std::string& path, mode_t mode = 0644) {
  switch (t) {
    case Type::kReg: {
      int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, mode);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    }
    case Type::kDir: return E(mkdir(path.c_str(), mode | 0111));
    case Type::kSym: return E(symlink("target", path.c_str()));
    case Type::kFifo: return E(mkfifo(path.c_str(), mode));
    case Type::kChr: return E(mknod(path.c_str(), S_IFCHR | mode, makedev(1, 3)));
    case Type::kBlk: return E(mknod(path.c_str(), S_IFBLK | mode, makedev(7, 200)));
    case Type::kSock: {
      int s = socket(AF_UNIX, SOCK_STREAM, 0);
      if (s < 0) return errno;
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      if (path.size() >= sizeof(a.sun_path)) return ENAMETOOLONG;  // bind would say EINVAL: keep the table simple
      std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
      int err = E(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
      close(s);
      return err;
    }
  }
  return EINVAL;
}

int WriteAt(const std::string& path, int flags, const std::string& data, off_t off = 0) {
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  int err = pwrite(fd, data.data(), data.size(), off) == static_cast<ssize_t>(data.size()) ? 0 : errno;
  if (close(fd) < 0 && err == 0) err = errno;
  return err;
}

int OpenClose(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

int SetTimes(const std::string& path, long a_sec, long a_nsec, long m_sec, long m_nsec) {
  timespec ts[2] = {{a_sec, a_nsec}, {m_sec, m_nsec}};
  return E(utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW));
}

struct Scenario {
  std::string name;
  // Runs as root in the scenario's directory; may use the actor's ids.
  std::function<void(const Actor&)> setup;
  // Runs as the actor in the scenario's directory.
  std::function<void(Errs&)> op;
  std::vector<std::string> inspect;  // relative paths ("." is the scenario's directory)
};

// What the test compares of one path.
struct Node {
  bool exists = false;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  nlink_t nlink = 0;
  off_t size = 0;  // not for directories (ext4 reports blocks, Shoal 0)
  dev_t rdev = 0;
  std::string content;  // regular files
  timespec atime{}, mtime{}, ctime{};
};

Node Inspect(const std::string& path) {
  Node n;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return n;
  n.exists = true;
  n.mode = st.st_mode;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.nlink = st.st_nlink;
  n.size = S_ISDIR(st.st_mode) ? 0 : st.st_size;
  n.rdev = S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? st.st_rdev : 0;
  n.atime = st.st_atim;
  n.mtime = st.st_mtim;
  n.ctime = st.st_ctim;
  if (S_ISREG(st.st_mode)) {
    int fd = open(path.c_str(), O_RDONLY);
    char buf[4096];
    ssize_t k;
    while (fd >= 0 && (k = read(fd, buf, sizeof(buf))) > 0) n.content.append(buf, k);
    if (fd >= 0) close(fd);
  }
  return n;
}

bool Same(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// One path's outcome, in a form two trees can be compared on.
std::string Describe(const Node& before, const Node& after) {
  if (!after.exists) return "absent";
  char buf[256];
  snprintf(buf, sizeof(buf), "mode=%06o uid=%u gid=%u nlink=%lu size=%ld rdev=%lx", after.mode, after.uid, after.gid,
           static_cast<unsigned long>(after.nlink), static_cast<long>(after.size),
           static_cast<unsigned long>(after.rdev));
  std::string s = buf;
  if (S_ISREG(after.mode)) s += " content=\"" + after.content + "\"";
  if (before.exists) {
    s += " changed:";
    s += Same(before.atime, after.atime) ? "" : " atime";
    s += Same(before.mtime, after.mtime) ? "" : " mtime";
    s += Same(before.ctime, after.ctime) ? "" : " ctime";
  } else {
    s += " (new)";
  }
  return s;
}

// Runs `fn` in a child process in `dir` as `actor`; returns what fn reported
// (or a single -1000 - status when the child failed).
Errs InChild(const std::string& dir, const Actor& actor, const std::function<void(Errs&)>& fn) {
  int p[2];
  if (pipe(p) != 0) return {-999};
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    alarm(60);  // a hung mount must not hang the test
    umask(022);
    if (chdir(dir.c_str()) != 0) _exit(3);
    if (actor.uid != 0) {
      gid_t groups[] = {actor.gid};
      if (setgroups(1, groups) != 0 || setresgid(actor.gid, actor.gid, actor.gid) != 0 ||
          setresuid(actor.uid, actor.uid, actor.uid) != 0)
        _exit(4);
    }
    Errs errs;
    fn(errs);
    ssize_t want = static_cast<ssize_t>(errs.size() * sizeof(int));
    _exit(write(p[1], errs.data(), want) == want ? 0 : 5);
  }
  close(p[1]);
  Errs out;
  int v;
  while (read(p[0], &v, sizeof(v)) == sizeof(v)) out.push_back(v);
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {-1000 - status};
  return out;
}

struct Outcome {
  Errs errs;
  std::vector<std::string> paths;  // Describe() of each inspected path
};

timespec CoarseNow() {
  timespec t;
  clock_gettime(CLOCK_REALTIME_COARSE, &t);
  return t;
}
bool After(const timespec& a, const timespec& b) {
  return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
}

Outcome RunIn(const Scenario& s, const std::string& tree, const Actor& actor) {
  Outcome o;
  const std::string dir = tree + "/" + actor.name + "/" + s.name;
  std::filesystem::create_directories(dir);
  chmod(dir.c_str(), 0777);
  Errs setup = InChild(dir, kRoot, [&](Errs& e) {
    if (s.setup) s.setup(actor);
    // Distinct past times per path, so that any change shows.
    for (size_t i = 0; i < s.inspect.size(); ++i) {
      long base = 1000000000L + 1000L * static_cast<long>(i);
      int err = SetTimes(s.inspect[i], base, 111, base + 500, 222);
      if (err != 0 && err != ENOENT) e.push_back(err);
    }
  });
  if (!setup.empty()) {
    o.errs = {-2000};
    o.paths = {"setup failed: " + std::to_string(setup[0])};
    return o;
  }
  std::vector<Node> before;
  timespec newest{};
  for (const auto& p : s.inspect) {
    before.push_back(Inspect(dir + "/" + p));
    if (before.back().exists && After(before.back().ctime, newest)) newest = before.back().ctime;
  }
  // Every change from now on gets a ctime past `newest`.
  EXPECT_TRUE(WaitFor([&] { return After(CoarseNow(), newest); }, std::chrono::seconds(5)));
  o.errs = InChild(dir, actor, s.op);
  for (size_t i = 0; i < s.inspect.size(); ++i) o.paths.push_back(Describe(before[i], Inspect(dir + "/" + s.inspect[i])));
  return o;
}

std::string Show(const Errs& e) {
  std::string s;
  for (int v : e) s += (s.empty() ? "" : ",") + (v > 0 ? std::string(strerrorname_np(v)) : std::to_string(v));
  return "[" + s + "]";
}

// ---- the table ----

std::vector<Scenario> Scenarios() {
  std::vector<Scenario> t;
  auto add = [&](std::string name, std::function<void(const Actor&)> setup, std::function<void(Errs&)> op,
                 std::vector<std::string> inspect) {
    t.push_back({std::move(name), std::move(setup), std::move(op), std::move(inspect)});
  };
  auto own = [](const std::string& p, const Actor& a) { lchown(p.c_str(), a.uid, a.gid); };

  for (Type ty : kTypes) {
    const std::string T = Name(ty);
    auto make_n = [ty](const Actor&) { Make(ty, "n"); };
    // Creation: the new inode, and mtime+ctime of the directory.
    add("create_" + T, nullptr, [ty](Errs& e) { e.push_back(Make(ty, "n")); }, {".", "n"});
    add("create_exists_" + T, make_n, [ty](Errs& e) { e.push_back(Make(ty, "n")); }, {".", "n"});
    add("create_long_name_" + T, nullptr, [ty](Errs& e) { e.push_back(Make(ty, std::string(256, 'x'))); }, {"."});
    add("create_in_closed_dir_" + T, [](const Actor&) { mkdir("c", 0755); },
        [ty](Errs& e) { e.push_back(Make(ty, "c/n")); }, {"c", "c/n"});
    // A setgid directory passes on its group (and S_ISGID to subdirectories).
    add("create_in_setgid_dir_" + T,
        [](const Actor&) {
          mkdir("g", 0777);
          chown("g", 0, kOtherGroup);
          chmod("g", 02777);
        },
        [ty](Errs& e) {
          e.push_back(Make(ty, "g/n", 02755));
        },
        {"g", "g/n"});
    // Attribute changes: ctime only (chmod follows a symlink to its missing target).
    add("chmod_" + T, make_n, [](Errs& e) { e.push_back(E(chmod("n", 0600))); }, {".", "n"});
    add("chmod_own_" + T, [=](const Actor& a) { make_n(a), own("n", a); },
        [](Errs& e) { e.push_back(E(chmod("n", 01700))); }, {".", "n"});
    // chmod by a non-member of the file's group drops S_ISGID.
    add("chmod_setgid_not_member_" + T,
        [=](const Actor& a) {
          make_n(a);
          lchown("n", a.uid, kOtherGroup);
        },
        [](Errs& e) { e.push_back(E(chmod("n", 02755))); }, {"n"});
    add("chown_" + T, make_n, [](Errs& e) { e.push_back(E(lchown("n", 1234, 5678))); }, {".", "n"});
    add("chown_to_own_group_" + T, [=](const Actor& a) { make_n(a), own("n", a); },
        [](Errs& e) { e.push_back(E(lchown("n", -1, getgid()))); }, {"n"});
    add("chown_noop_" + T, [=](const Actor& a) { make_n(a), own("n", a); },
        [](Errs& e) { e.push_back(E(lchown("n", -1, -1))); }, {"n"});
    if (ty != Type::kSym && ty != Type::kDir) {
      // chown drops S_ISUID, and S_ISGID with group-execute, for anyone.
      add("chown_clears_setid_" + T,
          [=](const Actor& a) {
            make_n(a), own("n", a);
            chmod("n", 06755);
          },
          [](Errs& e) { e.push_back(E(lchown("n", -1, getgid()))); }, {"n"});
      add("chown_keeps_setgid_without_gx_" + T,
          [=](const Actor& a) {
            make_n(a), own("n", a);
            chmod("n", 02745);
          },
          [](Errs& e) { e.push_back(E(lchown("n", -1, getgid()))); }, {"n"});
    }
    // Hard links: nlink and ctime of the inode, mtime+ctime of the directory.
    add("link_" + T, make_n, [](Errs& e) { e.push_back(E(link("n", "n2"))); }, {".", "n", "n2"});
    add("link_own_" + T, [=](const Actor& a) { make_n(a), own("n", a); },
        [](Errs& e) { e.push_back(E(link("n", "n2"))); }, {".", "n", "n2"});
    add("unlink_" + T, make_n, [](Errs& e) { e.push_back(E(unlink("n"))); }, {".", "n"});
    add("unlink_one_of_two_links_" + T,
        [=](const Actor& a) {
          make_n(a);
          link("n", "n2");
        },
        [](Errs& e) { e.push_back(E(unlink("n"))); }, {".", "n2"});
    add("rmdir_" + T, make_n, [](Errs& e) { e.push_back(E(rmdir("n"))); }, {".", "n"});
    // Sticky directories: only the owner of the file or the directory removes.
    add("unlink_sticky_others_" + T,
        [=](const Actor&) {
          mkdir("s", 01777);
          chmod("s", 01777);
          Make(ty, "s/n");
        },
        [](Errs& e) {
          e.push_back(E(unlink("s/n")));
          e.push_back(E(rmdir("s/n")));
        },
        {"s", "s/n"});
    add("unlink_sticky_own_" + T,
        [=](const Actor& a) {
          mkdir("s", 01777);
          chmod("s", 01777);
          Make(ty, "s/n");
          own("s/n", a);
        },
        [](Errs& e) {
          e.push_back(E(unlink("s/n")));
          e.push_back(E(rmdir("s/n")));
        },
        {"s", "s/n"});
    // rename: ctime of the moved inode, mtime+ctime of both directories.
    add("rename_onto_itself_" + T, make_n, [](Errs& e) { e.push_back(E(rename("n", "n"))); }, {".", "n"});
    add("rename_" + T, make_n, [](Errs& e) { e.push_back(E(rename("n", "m"))); }, {".", "n", "m"});
    add("rename_across_dirs_" + T,
        [=](const Actor& a) {
          make_n(a);
          mkdir("d", 0777);
          chmod("d", 0777);
        },
        [](Errs& e) { e.push_back(E(rename("n", "d/m"))); }, {".", "d", "n", "d/m"});
    add("rename_across_dirs_own_" + T,
        [=](const Actor& a) {
          make_n(a);
          own("n", a);
          mkdir("d", 0777);
          chmod("d", 0777);
        },
        [](Errs& e) { e.push_back(E(rename("n", "d/m"))); }, {".", "d", "n", "d/m"});
    add("rename_long_name_" + T, make_n, [](Errs& e) { e.push_back(E(rename("n", std::string(256, 'y').c_str()))); },
        {".", "n"});
    add("rename_noreplace_" + T,
        [=](const Actor& a) {
          make_n(a);
          Make(Type::kReg, "m");
        },
        [](Errs& e) { e.push_back(E(syscall(SYS_renameat2, AT_FDCWD, "n", AT_FDCWD, "m", RENAME_NOREPLACE))); },
        {".", "n", "m"});
    add("rename_sticky_others_" + T,
        [=](const Actor&) {
          mkdir("s", 01777);
          chmod("s", 01777);
          Make(ty, "s/n");
        },
        [](Errs& e) { e.push_back(E(rename("s/n", "s/m"))); }, {"s", "s/n", "s/m"});
    add("rename_sticky_onto_others_" + T,
        [=](const Actor& a) {
          mkdir("s", 01777);
          chmod("s", 01777);
          Make(ty, "s/n");
          own("s/n", a);
          Make(ty, "s/m");
        },
        [](Errs& e) { e.push_back(E(rename("s/n", "s/m"))); }, {"s", "s/n", "s/m"});
    for (Type over : kTypes) {
      const std::string O = Name(over);
      add("rename_" + T + "_over_" + O,
          [=](const Actor&) {
            Make(ty, "a");
            Make(over, "b");
          },
          [](Errs& e) { e.push_back(E(rename("a", "b"))); }, {".", "a", "b"});
    }
    add("rename_" + T + "_over_full_dir",
        [=](const Actor&) {
          Make(ty, "a");
          mkdir("b", 0777);
          Make(Type::kReg, "b/x");
        },
        [](Errs& e) { e.push_back(E(rename("a", "b"))); }, {".", "a", "b"});
    // utimensat: both NOW needs owner or write permission (EACCES); explicit
    // times need the owner (EPERM); OMIT leaves a time alone.
    for (mode_t m : {0644, 0666}) {
      const std::string M = m == 0644 ? "" : "_writable";
      auto setup = [=](const Actor&) {
        Make(ty, "n", m);
        if (ty != Type::kSym) chmod("n", m);
      };
      add("utimens_now" + M + "_" + T, setup,
          [](Errs& e) { e.push_back(E(utimensat(AT_FDCWD, "n", nullptr, AT_SYMLINK_NOFOLLOW))); }, {"n"});
      add("utimens_atime_now_mtime_omit" + M + "_" + T, setup,
          [](Errs& e) {
            timespec ts[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
            e.push_back(E(utimensat(AT_FDCWD, "n", ts, AT_SYMLINK_NOFOLLOW)));
          },
          {"n"});
      add("utimens_explicit" + M + "_" + T, setup,
          [](Errs& e) {
            timespec ts[2] = {{1500000000, 5}, {0, UTIME_OMIT}};
            e.push_back(E(utimensat(AT_FDCWD, "n", ts, AT_SYMLINK_NOFOLLOW)));
          },
          {"n"});
      add("utimens_omit_both" + M + "_" + T, setup,
          [](Errs& e) {
            timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
            e.push_back(E(utimensat(AT_FDCWD, "n", ts, AT_SYMLINK_NOFOLLOW)));
          },
          {"n"});
    }
    add("utimens_own_explicit_" + T, [=](const Actor& a) { make_n(a), own("n", a); },
        [](Errs& e) {
          timespec ts[2] = {{1500000000, 5}, {1600000000, 7}};
          e.push_back(E(utimensat(AT_FDCWD, "n", ts, AT_SYMLINK_NOFOLLOW)));
        },
        {"n"});
  }

  // ---- regular files: data, O_TRUNC, O_CREAT, setuid on write ----
  auto file = [](const std::string& data, mode_t mode) {
    return [=](const Actor&) {
      WriteAt("f", O_CREAT | O_WRONLY, data);
      chmod("f", mode);
    };
  };
  add("echo_over_longer_file", file("hello world, long\n", 0666),
      [](Errs& e) { e.push_back(WriteAt("f", O_WRONLY | O_CREAT | O_TRUNC, "hi\n")); }, {".", "f"});
  add("otrunc_empty_file", file("", 0666), [](Errs& e) { e.push_back(OpenClose("f", O_WRONLY | O_TRUNC)); },
      {"f"});
  add("otrunc_rdonly", file("abcdef", 0666), [](Errs& e) { e.push_back(OpenClose("f", O_RDONLY | O_TRUNC)); }, {"f"});
  add("otrunc_not_writable", file("abcdef", 0644), [](Errs& e) { e.push_back(OpenClose("f", O_WRONLY | O_TRUNC)); },
      {"f"});
  add("ocreat_existing_write", file("abc", 0644),
      [](Errs& e) { e.push_back(OpenClose("f", O_CREAT | O_WRONLY)); }, {".", "f"});
  add("ocreat_existing_read", file("abc", 0640),
      [](Errs& e) { e.push_back(OpenClose("f", O_CREAT | O_RDONLY)); }, {".", "f"});
  add("ocreat_existing_trunc", file("abc", 0644),
      [](Errs& e) { e.push_back(OpenClose("f", O_CREAT | O_WRONLY | O_TRUNC)); }, {".", "f"});
  add("ocreat_excl_existing", file("abc", 0666),
      [](Errs& e) { e.push_back(OpenClose("f", O_CREAT | O_EXCL | O_WRONLY)); }, {".", "f"});
  add("ocreat_excl_symlink", [](const Actor&) { symlink("f", "l"); },
      [](Errs& e) { e.push_back(OpenClose("l", O_CREAT | O_EXCL | O_WRONLY)); }, {".", "l", "f"});
  add("overwrite_in_place", file("abcdef", 0666), [](Errs& e) { e.push_back(WriteAt("f", O_WRONLY, "XY", 2)); },
      {"f"});
  add("append_write", file("abc", 0666), [](Errs& e) { e.push_back(WriteAt("f", O_WRONLY | O_APPEND, "de")); }, {"f"});
  add("read_file", file("abc", 0644),
      [](Errs& e) {
        int fd = open("f", O_RDONLY);
        char b[8];
        e.push_back(fd < 0 ? errno : E(read(fd, b, sizeof(b))));
        if (fd >= 0) close(fd);
      },
      {"f"});
  add("truncate_shrink", file("abcdef", 0666), [](Errs& e) { e.push_back(E(truncate("f", 2))); }, {"f"});
  add("truncate_grow", file("abc", 0666), [](Errs& e) { e.push_back(E(truncate("f", 6))); }, {"f"});
  add("truncate_same_size", file("abc", 0666), [](Errs& e) { e.push_back(E(truncate("f", 3))); }, {"f"});
  add("truncate_not_writable", file("abc", 0644), [](Errs& e) { e.push_back(E(truncate("f", 1))); }, {"f"});
  add("ftruncate", file("abcdef", 0666),
      [](Errs& e) {
        int fd = open("f", O_WRONLY);
        e.push_back(fd < 0 ? errno : E(ftruncate(fd, 1)));
        if (fd >= 0) close(fd);
      },
      {"f"});
  add("write_clears_setuid", file("abc", 06777), [](Errs& e) { e.push_back(WriteAt("f", O_WRONLY, "x")); }, {"f"});
  add("write_keeps_setgid_without_gx", file("abc", 02767), [](Errs& e) { e.push_back(WriteAt("f", O_WRONLY, "x")); },
      {"f"});
  add("truncate_clears_setuid", file("abc", 06777), [](Errs& e) { e.push_back(E(truncate("f", 1))); }, {"f"});

  // ---- directories: link counts, rename rules ----
  add("mkdir_nlink", [](const Actor&) { mkdir("d", 0777); },
      [](Errs& e) {
        e.push_back(E(mkdir("d/a", 0755)));
        e.push_back(E(mkdir("d/b", 0755)));
        e.push_back(E(rmdir("d/a")));
      },
      {".", "d", "d/b"});
  add("rename_dir_across_nlink",
      [](const Actor&) {
        mkdir("p", 0777);
        mkdir("q", 0777);
        mkdir("p/d", 0777);
      },
      [](Errs& e) { e.push_back(E(rename("p/d", "q/d"))); }, {"p", "q", "q/d"});
  add("rename_dir_into_itself",
      [](const Actor&) {
        mkdir("a", 0777);
        mkdir("a/b", 0777);
      },
      [](Errs& e) {
        e.push_back(E(rename("a", "a/b/c")));
        e.push_back(E(rename("a", "a/c")));
      },
      {".", "a", "a/b"});
  add("rename_dir_over_empty_dir_across",
      [](const Actor&) {
        mkdir("p", 0777);
        mkdir("q", 0777);
        mkdir("p/d", 0777);
        mkdir("q/e", 0777);
      },
      [](Errs& e) { e.push_back(E(rename("p/d", "q/e"))); }, {"p", "q", "q/e", "p/d"});
  add("rename_onto_hard_link_of_itself",
      [](const Actor&) {
        WriteAt("a", O_CREAT | O_WRONLY, "x");
        link("a", "b");
      },
      [](Errs& e) { e.push_back(E(rename("a", "b"))); }, {".", "a", "b"});
  add("rename_other_users_dir_across",  // needs write permission on the directory itself
      [](const Actor&) {
        mkdir("p", 0777);
        mkdir("q", 0777);
        mkdir("p/d", 0755);
      },
      [](Errs& e) { e.push_back(E(rename("p/d", "q/d"))); }, {"p", "q", "p/d", "q/d"});
  add("symlink_loop",
      [](const Actor&) {
        symlink("l2", "l1");
        symlink("l1", "l2");
      },
      [](Errs& e) {
        e.push_back(OpenClose("l1", O_RDONLY));
        struct stat st;
        e.push_back(E(stat("l1", &st)));
      },
      {"l1", "l2"});
  add("mkdir_in_setgid_dir_nested",
      [](const Actor&) {
        mkdir("g", 0777);
        chown("g", 0, kOtherGroup);
        chmod("g", 02777);
      },
      [](Errs& e) {
        e.push_back(E(mkdir("g/a", 0755)));
        e.push_back(E(mkdir("g/a/b", 0700)));
        e.push_back(Make(Type::kReg, "g/a/b/f", 0644));
      },
      {"g", "g/a", "g/a/b", "g/a/b/f"});
  return t;
}

// A bind mount of `dir` on itself with noatime; undone on destruction.
class NoatimeBind {
 public:
  explicit NoatimeBind(const std::string& dir) : dir_(dir) {
    ok_ = mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) == 0;
    if (ok_) ok_ = mount(nullptr, dir.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_NOATIME, nullptr) == 0;
  }
  ~NoatimeBind() { umount2(dir_.c_str(), MNT_DETACH); }
  bool ok() const { return ok_; }

 private:
  std::string dir_;
  bool ok_ = false;
};

TEST(PosixConformanceTest, EveryScenarioMatchesALocalFilesystem) {
  ASSERT_EQ(geteuid(), 0u) << "needs root (FUSE mount, other users, device nodes)";
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string local = c.dir() + "/local", remote = c.mount() + "/conf";
  std::filesystem::create_directories(local);
  ASSERT_EQ(mkdir(remote.c_str(), 0755), 0) << strerror(errno);
  NoatimeBind bind(local);
  ASSERT_TRUE(bind.ok()) << strerror(errno);
  umask(022);
  int checked = 0, differ = 0;
  for (const Actor& actor : {kRoot, kUnpriv}) {
    for (const Scenario& s : Scenarios()) {
      Outcome want = RunIn(s, local, actor), got = RunIn(s, remote, actor);
      ++checked;
      std::string diff;
      if (want.errs != got.errs) diff += "  errno: local " + Show(want.errs) + ", shoal " + Show(got.errs) + "\n";
      for (size_t i = 0; i < s.inspect.size(); ++i) {
        if (want.paths[i] != got.paths[i])
          diff += "  " + s.inspect[i] + ":\n    local " + want.paths[i] + "\n    shoal " + got.paths[i] + "\n";
      }
      if (!diff.empty()) {
        ++differ;
        ADD_FAILURE() << s.name << " as " << actor.name << "\n" << diff;
      }
    }
  }
  EXPECT_EQ(differ, 0) << "of " << checked << " scenario runs";
  EXPECT_GT(checked, 500);
}

// A FIFO and a unix socket on the mount work as the kernel's: a reader and
// a writer meet, a listener accepts.
TEST(PosixConformanceTest, FifoAndSocketOnTheMount) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string fifo = c.mount() + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0) << strerror(errno);
  int r = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(r, 0) << strerror(errno);
  int w = open(fifo.c_str(), O_WRONLY);
  ASSERT_GE(w, 0) << strerror(errno);
  ASSERT_EQ(write(w, "hey", 3), 3);
  char buf[8] = {};
  EXPECT_EQ(read(r, buf, sizeof(buf)), 3);
  EXPECT_STREQ(buf, "hey");
  close(w);
  close(r);
  struct stat st;
  ASSERT_EQ(stat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_size, 0);

  // A socket bound on the mount (the test's cwd keeps sun_path short).
  ASSERT_EQ(chdir(c.mount().c_str()), 0);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  strcpy(a.sun_path, "sock");
  ASSERT_EQ(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  ASSERT_EQ(listen(l, 1), 0);
  int k = socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT_EQ(connect(k, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  int acc = accept(l, nullptr, nullptr);
  EXPECT_GE(acc, 0);
  EXPECT_EQ(write(k, "x", 1), 1);
  EXPECT_EQ(read(acc, buf, 1), 1);
  close(acc);
  close(k);
  close(l);
  ASSERT_EQ(lstat("sock", &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  ASSERT_EQ(chdir("/"), 0);

  // Device nodes keep their number; readdir reports every type.
  ASSERT_EQ(mknod((c.mount() + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << strerror(errno);
  ASSERT_EQ(mknod((c.mount() + "/loop").c_str(), S_IFBLK | 0660, makedev(7, 300)), 0) << strerror(errno);
  ASSERT_EQ(lstat((c.mount() + "/loop").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 300));
  std::map<std::string, unsigned char> types;
  DIR* d = opendir(c.mount().c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) types[e->d_name] = e->d_type;
  closedir(d);
  EXPECT_EQ(types["fifo"], DT_FIFO);
  EXPECT_EQ(types["sock"], DT_SOCK);
  EXPECT_EQ(types["null"], DT_CHR);
  EXPECT_EQ(types["loop"], DT_BLK);
}

// statfs: sensible space and inode counts, and the name limit.
TEST(PosixConformanceTest, StatfsIsSensible) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  struct statvfs v;
  ASSERT_EQ(statvfs(c.mount().c_str(), &v), 0) << strerror(errno);
  EXPECT_GT(v.f_blocks, 0u);
  EXPECT_GT(v.f_bavail, 0u);
  EXPECT_LE(v.f_bfree, v.f_blocks);
  EXPECT_GT(v.f_files, 0u);
  EXPECT_GT(v.f_ffree, 0u);
  EXPECT_LE(v.f_ffree, v.f_files);
  EXPECT_EQ(v.f_namemax, 255u);
  // Creating files is counted.
  fsblkcnt_t used_before = v.f_files - v.f_ffree;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(mkdir((c.mount() + "/d" + std::to_string(i)).c_str(), 0755), 0);
  ASSERT_EQ(statvfs(c.mount().c_str(), &v), 0);
  EXPECT_EQ(v.f_files - v.f_ffree, used_before + 5);
}

}  // namespace
}  // namespace shoal::testing
