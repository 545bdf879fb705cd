// adviseHugePages(buffer): asks the kernel for transparent huge pages (madvise MADV_HUGEPAGE) over
// the 2 MiB-aligned part of an ArrayBuffer's memory; returns the MiB advised (0: none of it is
// aligned), or throws with the errno's text. For a WASM guest's memory, which V8 maps itself (no
// allocator setting reaches it): with the host's THP mode `madvise` (Debian's default) its pages
// are otherwise 4 KiB, and a restore that writes 128 MiB into it takes ~32,000 page faults,
// 0.38-0.52 s of a core on a virtual machine, against 11-18 ms on 2 MiB pages (docs/performance.md,
// reconnect, "fourteenth pass"). Built by scripts/build-native.js; optional (wasm/huge-pages.ts).
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <node_api.h>

#define HUGE_PAGE ((uintptr_t)2 << 20)

static napi_value advise(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool is_buffer = false;
  void *data = NULL;
  size_t length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_is_arraybuffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "adviseHugePages takes an ArrayBuffer");
    return NULL;
  }
  if (napi_get_arraybuffer_info(env, argv[0], &data, &length) != napi_ok) {
    napi_throw_error(env, NULL, "adviseHugePages: the ArrayBuffer's memory is not readable");
    return NULL;
  }
  uintptr_t start = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t end = ((uintptr_t)data + length) & ~(HUGE_PAGE - 1);
  uintptr_t advised = end > start ? end - start : 0;
  if (advised && madvise((void *)start, advised, MADV_HUGEPAGE) != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value out;
  napi_create_uint32(env, (uint32_t)(advised >> 20), &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "adviseHugePages", NAPI_AUTO_LENGTH, advise, NULL, &fn);
  napi_set_named_property(env, exports, "adviseHugePages", fn);
  return exports;
}
