// Namespace operations through the mount, checked against what a local
// filesystem returns for the same sequence.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "tests/integration/cluster.h"

namespace shoal::testing {
namespace {

// errno of a call (0 on success).
int E(int rc) { return rc < 0 ? errno : 0; }

int WriteAll(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return errno;
  int err = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) ? 0 : errno;
  if (close(fd) < 0 && err == 0) err = errno;
  return err;
}

// The same operations on any root; returns every call's errno in order.
std::vector<int> Script(const std::string& r) {
  std::vector<int> e;
  auto p = [&](const std::string& rel) { return r + "/" + rel; };
  e.push_back(E(mkdir(p("a").c_str(), 0755)));
  e.push_back(E(mkdir(p("a/b").c_str(), 0750)));
  e.push_back(E(mkdir(p("c").c_str(), 0755)));
  e.push_back(E(mkdir(p("c").c_str(), 0755)));  // EEXIST
  e.push_back(WriteAll(p("a/f1"), "hello"));
  e.push_back(WriteAll(p("a/f2"), "world!"));
  e.push_back(WriteAll(p("c/f3"), std::string(10000, 'x')));
  e.push_back(WriteAll(p("a/b/inner"), "in"));
  e.push_back(E(rename(p("a/f1").c_str(), p("c/f1").c_str())));      // across directories
  e.push_back(E(rename(p("a/f2").c_str(), p("c/f1").c_str())));      // replacing
  e.push_back(E(rename(p("c/f3").c_str(), p("c/g3").c_str())));      // within a directory
  e.push_back(E(rename(p("a/b").c_str(), p("c/b").c_str())));        // a directory across
  e.push_back(E(mkdir(p("c/e").c_str(), 0755)));
  e.push_back(E(rename(p("c/b").c_str(), p("c/e").c_str())));        // over an empty directory
  e.push_back(E(mkdir(p("c/full").c_str(), 0755)));
  e.push_back(WriteAll(p("c/full/x"), "x"));
  e.push_back(E(rename(p("c/e").c_str(), p("c/full").c_str())));     // ENOTEMPTY
  e.push_back(E(rename(p("c").c_str(), p("c/e/under").c_str())));    // EINVAL: under itself
  e.push_back(E(rename(p("c/g3").c_str(), p("c/e").c_str())));       // EISDIR
  e.push_back(E(rename(p("c/e").c_str(), p("c/g3").c_str())));       // ENOTDIR
  e.push_back(E(rmdir(p("c").c_str())));                             // ENOTEMPTY
  e.push_back(E(rmdir(p("a").c_str())));
  e.push_back(E(rmdir(p("c/g3").c_str())));                          // ENOTDIR
  e.push_back(E(unlink(p("c/e").c_str())));                          // EISDIR
  e.push_back(E(unlink(p("c/nothing").c_str())));                    // ENOENT
  e.push_back(E(chmod(p("c/f1").c_str(), 0600)));
  e.push_back(E(chown(p("c/f1").c_str(), 1234, 5678)));
  e.push_back(E(chmod(p("c/full").c_str(), 0700)));
  e.push_back(E(truncate(p("c/g3").c_str(), 3)));                    // down
  e.push_back(E(truncate(p("c/g3").c_str(), 100000)));               // up: zeros, not old bytes
  e.push_back(E(truncate(p("c/f1").c_str(), 2)));
  e.push_back(E(symlink("f1", p("c/sl").c_str())));
  e.push_back(E(symlink("f1", p("c/sl").c_str())));                  // EEXIST
  e.push_back(E(link(p("c/f1").c_str(), p("c/hard").c_str())));
  e.push_back(E(link(p("c").c_str(), p("dirlink").c_str())));        // EPERM
  e.push_back(E(unlink(p("c/full/x").c_str())));
  e.push_back(E(rmdir(p("c/full").c_str())));
  return e;
}

struct Node {
  char type;
  unsigned mode;
  unsigned uid, gid;
  long size;
  unsigned nlink;
  std::string content;  // file bytes or link target
  bool operator==(const Node&) const = default;
};

std::map<std::string, Node> Snapshot(const std::string& root) {
  std::map<std::string, Node> out;
  for (auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    std::string rel = entry.path().string().substr(root.size());
    struct stat st;
    lstat(entry.path().c_str(), &st);
    Node n{S_ISDIR(st.st_mode) ? 'd' : S_ISLNK(st.st_mode) ? 'l' : 'f', st.st_mode & 07777u, st.st_uid, st.st_gid,
           S_ISDIR(st.st_mode) ? 0 : static_cast<long>(st.st_size), S_ISDIR(st.st_mode) ? 0u : static_cast<unsigned>(st.st_nlink), ""};
    if (n.type == 'f') {
      FILE* f = fopen(entry.path().c_str(), "rb");
      char buf[65536];
      size_t k;
      while ((k = fread(buf, 1, sizeof(buf), f)) > 0) n.content.append(buf, k);
      fclose(f);
    } else if (n.type == 'l') {
      n.content = std::filesystem::read_symlink(entry.path()).string();
    }
    out[rel] = n;
  }
  return out;
}

std::string Describe(const std::map<std::string, Node>& m) {
  std::string s;
  for (const auto& [k, n] : m)
    s += k + " " + n.type + " " + std::to_string(n.mode) + " " + std::to_string(n.uid) + ":" + std::to_string(n.gid) +
         " size=" + std::to_string(n.size) + " nlink=" + std::to_string(n.nlink) + "\n";
  return s;
}

std::set<std::string> ReadDirNames(const std::string& dir) {
  std::set<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  return names;
}

TEST(NamespaceTest, OperationsMatchALocalFilesystem) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string local = c.dir() + "/local";
  std::filesystem::create_directories(local);
  umask(022);
  std::vector<int> want = Script(local);
  std::vector<int> got = Script(c.mount());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << "step " << i << ": mount says " << strerror(got[i]) << ", local fs says "
                               << strerror(want[i]);
  auto a = Snapshot(local), b = Snapshot(c.mount());
  EXPECT_EQ(a, b) << "local:\n" << Describe(a) << "mount:\n" << Describe(b);
  // Truncating up exposed zeros, not the bytes that were cut.
  EXPECT_EQ(b["/c/g3"].content, std::string(3, 'x') + std::string(100000 - 3, '\0'));
}

TEST(NamespaceTest, ReadDirOfTenThousandEntries) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string local = c.dir() + "/local-big", remote = c.mount() + "/big";
  std::filesystem::create_directories(local);
  ASSERT_EQ(mkdir(remote.c_str(), 0755), 0);
  for (int i = 0; i < 10000; ++i) {
    char name[32];
    snprintf(name, sizeof(name), "/entry-%05d", i);
    for (const auto& root : {local, remote}) {
      int fd = open((root + name).c_str(), O_CREAT | O_WRONLY, 0644);
      ASSERT_GE(fd, 0) << root + name << ": " << strerror(errno);
      close(fd);
    }
  }
  auto want = ReadDirNames(local);
  auto got = ReadDirNames(remote);
  EXPECT_EQ(want.size(), 10002u);  // with "." and ".."
  EXPECT_EQ(got, want);
  // Listing with attributes (readdir-plus) through the library, paged.
  auto client = c.NewClient();
  ASSERT_TRUE(client);
  auto dir = client->Resolve(client::ProcessCaller(), "/big");
  ASSERT_TRUE(dir.ok());
  size_t seen = 0;
  std::string after;
  for (;;) {
    auto page = client->ReadDir(client::ProcessCaller(), dir->ino(), after, 1000, true);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& e : page->entries()) {
      EXPECT_EQ(e.attr().ino(), e.ino());
      EXPECT_EQ(e.attr().type(), proto::REGULAR);
      ++seen;
    }
    if (page->eof()) break;
    after = page->entries().rbegin()->name();
  }
  EXPECT_EQ(seen, 10000u);
}

TEST(NamespaceTest, BadNamesAndEndOfFile) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  std::string long_name = c.mount() + "/" + std::string(256, 'n');
  EXPECT_EQ(E(open(long_name.c_str(), O_CREAT | O_WRONLY, 0644)), ENAMETOOLONG);
  EXPECT_EQ(E(mkdir(long_name.c_str(), 0755)), ENAMETOOLONG);
  std::string ok_name = c.mount() + "/" + std::string(255, 'n');
  EXPECT_EQ(WriteAll(ok_name, "abc"), 0);
  int fd = open(ok_name.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[16];
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 3), 0);     // exactly at the end
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 4096), 0);  // past it
  EXPECT_EQ(pread(fd, buf, sizeof(buf), 1), 2);
  close(fd);
  // O_DIRECT opens are honoured (and served) too.
  fd = open(ok_name.c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  alignas(4096) static char abuf[4096];
  EXPECT_EQ(pread(fd, abuf, sizeof(abuf), 0), 3);
  close(fd);
}

// Names are bytes: one that is not UTF-8 (Latin-1 "café", and bytes no encoding
// gives meaning) goes through create, readdir, stat, rename, symlink and unlink.
TEST(NamespaceTest, NamesThatAreNotUtf8RoundTrip) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string latin1 = "caf\xe9.txt";
  const std::string raw = "\xff\xfe\x80-\xc3(";
  const std::string a = c.mount() + "/" + latin1;
  ASSERT_EQ(WriteAll(a, "bytes"), 0);
  ASSERT_EQ(E(mkdir((c.mount() + "/" + raw).c_str(), 0755)), 0);
  std::set<std::string> listed;
  DIR* d = opendir(c.mount().c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) listed.insert(e->d_name);
  closedir(d);
  EXPECT_TRUE(listed.count(latin1));
  EXPECT_TRUE(listed.count(raw));
  struct stat st;
  ASSERT_EQ(stat(a.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 5);
  const std::string moved = c.mount() + "/" + raw + "/" + raw + "\xe9";
  ASSERT_EQ(E(rename(a.c_str(), moved.c_str())), 0);
  EXPECT_EQ(E(stat(a.c_str(), &st)), ENOENT);
  EXPECT_EQ(ReadFile(moved), "bytes");
  // A symlink whose target is not UTF-8 either.
  const std::string link = c.mount() + "/l\xe9";
  ASSERT_EQ(E(symlink((raw + "/" + raw + "\xe9").c_str(), link.c_str())), 0);
  char target[64] = {};
  ASSERT_EQ(readlink(link.c_str(), target, sizeof(target) - 1), static_cast<ssize_t>(raw.size() * 2 + 2));
  EXPECT_EQ(std::string(target), raw + "/" + raw + "\xe9");
  EXPECT_EQ(ReadFile(link), "bytes");
  EXPECT_EQ(E(unlink(link.c_str())), 0);
  EXPECT_EQ(E(unlink(moved.c_str())), 0);
  EXPECT_EQ(E(rmdir((c.mount() + "/" + raw).c_str())), 0);
  EXPECT_EQ(E(stat(moved.c_str(), &st)), ENOENT);
}

// Extended attributes through the kernel: the size query, a short buffer,
// the flags, Linux's limits, and the namespaces Shoal does not store.
TEST(NamespaceTest, ExtendedAttributesRoundTrip) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string f = c.mount() + "/x";
  ASSERT_EQ(WriteAll(f, "data"), 0);
  const std::string value("bin\0ary\xff", 8);
  ASSERT_EQ(E(setxattr(f.c_str(), "user.one", value.data(), value.size(), XATTR_CREATE)), 0);
  ASSERT_EQ(E(setxattr(f.c_str(), "trusted.two", "2", 1, 0)), 0);
  EXPECT_EQ(E(setxattr(f.c_str(), "user.one", "v", 1, XATTR_CREATE)), EEXIST);
  EXPECT_EQ(E(setxattr(f.c_str(), "user.none", "v", 1, XATTR_REPLACE)), ENODATA);
  EXPECT_EQ(getxattr(f.c_str(), "user.one", nullptr, 0), static_cast<ssize_t>(value.size()));
  char buf[256];
  EXPECT_EQ(getxattr(f.c_str(), "user.one", buf, 3), -1);
  EXPECT_EQ(errno, ERANGE);
  ASSERT_EQ(getxattr(f.c_str(), "user.one", buf, sizeof(buf)), static_cast<ssize_t>(value.size()));
  EXPECT_EQ(std::string(buf, value.size()), value);
  EXPECT_EQ(getxattr(f.c_str(), "user.none", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  // The listing: every name NUL-terminated.
  ssize_t n = listxattr(f.c_str(), nullptr, 0);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof("trusted.two") + sizeof("user.one")));
  ASSERT_EQ(listxattr(f.c_str(), buf, sizeof(buf)), n);
  EXPECT_EQ(std::string(buf, n), std::string("trusted.two\0user.one\0", n));
  EXPECT_EQ(listxattr(f.c_str(), buf, 4), -1);
  EXPECT_EQ(errno, ERANGE);
  // Linux's limits, and the namespaces not stored: security.* reads find
  // nothing (the kernel asks for security.capability on writes).
  std::string big(64 * 1024 + 1, 'b');
  EXPECT_EQ(E(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0)), E2BIG);
  big.pop_back();
  EXPECT_EQ(E(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0)), 0);
  EXPECT_EQ(getxattr(f.c_str(), "user.big", nullptr, 0), static_cast<ssize_t>(big.size()));
  EXPECT_EQ(getxattr(f.c_str(), "security.capability", buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(E(setxattr(f.c_str(), "security.x", "v", 1, 0)), EOPNOTSUPP);
  EXPECT_EQ(E(setxattr(f.c_str(), "os2.x", "v", 1, 0)), EOPNOTSUPP);
  // Writes still work with getxattr answered (no stale privilege checks).
  ASSERT_EQ(WriteAll(f, "rewritten"), 0);
  EXPECT_EQ(ReadFile(f), "rewritten");
  ASSERT_EQ(E(removexattr(f.c_str(), "user.one")), 0);
  EXPECT_EQ(E(removexattr(f.c_str(), "user.one")), ENODATA);
  // Symlinks take no user.* attributes (lsetxattr acts on the link itself).
  const std::string l = c.mount() + "/lnk";
  ASSERT_EQ(E(symlink("x", l.c_str())), 0);
  EXPECT_EQ(E(lsetxattr(l.c_str(), "user.k", "v", 1, 0)), EPERM);
  // Attributes outlive a restart of the mount (they are meta's).
  auto client = c.NewClient();
  ASSERT_TRUE(client);
  auto a = client->Resolve(client::ProcessCaller(), "/x");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*client->GetXattr(client::ProcessCaller(), a->ino(), "trusted.two"), "2");
}

TEST(NamespaceTest, AWriterSeesItsOwnLengthBeforeClose) {
  LocalCluster c;
  ASSERT_TRUE(c.Start()) << c.error();
  const std::string f = c.mount() + "/grow";
  int fd = open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "hello", 5, 3 << 20), 5);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, (3 << 20) + 5);
  ASSERT_EQ(stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, (3 << 20) + 5);
  int other = open(f.c_str(), O_RDONLY);  // another handle of the same mount reads it
  ASSERT_GE(other, 0);
  char buf[8];
  EXPECT_EQ(pread(other, buf, sizeof(buf), (3 << 20) - 3), 8);
  EXPECT_EQ(std::string(buf, 8), std::string("\0\0\0hello", 8));
  close(other);
  // Appends land at the end this mount knows.
  int app = open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(app, 0);
  ASSERT_EQ(write(app, "!", 1), 1);
  close(app);
  ASSERT_EQ(ftruncate(fd, 2), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 2);
  close(fd);
  // After close the length is meta's: a fresh client sees the same.
  auto client = c.NewClient();
  ASSERT_TRUE(client);
  EXPECT_EQ(client->Resolve(client::ProcessCaller(), "/grow")->size(), 2u);
}

TEST(NamespaceTest, PageCacheMountServesMmapAndDirectIo) {
  LocalCluster c;
  ASSERT_TRUE(c.Start(false)) << c.error();
  ASSERT_TRUE(c.StartFuse({"--cache", "page"})) << c.error();
  const std::string f = c.mount() + "/mapped";
  std::string data(3 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
  ASSERT_EQ(WriteAll(f, data), 0);
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* m = mmap(nullptr, data.size(), PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(m, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(memcmp(m, data.data(), data.size()), 0);
  munmap(m, data.size());
  close(fd);
  fd = open(f.c_str(), O_RDONLY | O_DIRECT);  // bypasses the page cache, same bytes
  ASSERT_GE(fd, 0);
  void* buf = nullptr;
  ASSERT_EQ(posix_memalign(&buf, 4096, 1 << 20), 0);
  EXPECT_EQ(pread(fd, buf, 1 << 20, 1 << 20), 1 << 20);
  EXPECT_EQ(memcmp(buf, data.data() + (1 << 20), 1 << 20), 0);
  free(buf);
  close(fd);
}

}  // namespace
}  // namespace shoal::testing
