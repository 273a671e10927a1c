/* sconv_avx512f_14x24 — the three-quarter variant of sconv_avx512f_14x32 (same contract with
 * n <= 24 and 24 columns of B read per k step), for tiles of 17 to 24 columns. */
#define W24 1
#define KNAME sconv_avx512f_14x24
#include "x86_64/sconv_avx512f_14x32.S"
