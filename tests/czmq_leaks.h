/*
 * libczmq 4.2's zconfig_load() leaks its zfile when a file does not parse,
 * as zcert_load() of a file that is no certificate does: under
 * LeakSanitizer (make unit-asan) the loads between CZMQ_LEAKS_BEGIN() and
 * CZMQ_LEAKS_END() are not counted.  (fasciad leaks those 133 bytes once
 * per read of a clients directory holding such a file: docs/security.md.)
 */
#ifndef CZMQ_LEAKS_H
#define CZMQ_LEAKS_H
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define CZMQ_LEAKS_BEGIN() __lsan_disable()
#define CZMQ_LEAKS_END() __lsan_enable()
#else
#define CZMQ_LEAKS_BEGIN() ((void)0)
#define CZMQ_LEAKS_END() ((void)0)
#endif
#endif
