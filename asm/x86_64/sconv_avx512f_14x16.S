/* sconv_avx512f_14x16 — the half-width variant of sconv_avx512f_14x32 (same contract with
 * n <= 16 and 16 columns of B read per k step), for tiles of at most 16 columns. */
#define HALF 1
#define KNAME sconv_avx512f_14x16
#include "x86_64/sconv_avx512f_14x32.S"
