/* An invariant of a fuzz target: report it and abort, so libFuzzer keeps
 * the input as a crash. */
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c,  \
				__FILE__, __LINE__);                           \
			abort();                                               \
		}                                                              \
	} while (0)
