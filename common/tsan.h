// Happens-before edges that ThreadSanitizer cannot see.
//
// Some hand-offs between threads go through the kernel, not through memory
// the sanitizer watches: with io_uring, the thread that fills a request and
// submits it and the thread that reaps its completion are ordered by the
// kernel alone. Without an annotation TSan reports the completion thread's
// first touch of the request as a race. Publish the object before it leaves
// (TsanRelease, e.g. before io_uring_submit) and claim it where it comes back
// (TsanAcquire, on the completion, before touching it). Both do nothing in a
// build without TSan.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define SHOAL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHOAL_TSAN 1
#endif
#endif

#ifdef SHOAL_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace shoal {

inline void TsanRelease(const void* addr) {
#ifdef SHOAL_TSAN
  __tsan_release(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}

inline void TsanAcquire(const void* addr) {
#ifdef SHOAL_TSAN
  __tsan_acquire(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}

}  // namespace shoal
