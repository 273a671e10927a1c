/* qgemm_u8i8_avx512vnni_14x16 — the half-width variant of qgemm_u8i8_avx512vnni_14x32 (same
 * contract and packed B' layout, n <= 16: it reads the first 64 bytes of each k-group of B'
 * and col_off[0..16)), for tiles of at most 16 columns. */
#define HALF 1
#define KNAME qgemm_u8i8_avx512vnni_14x16
#include "x86_64/qgemm_u8i8_avx512vnni_14x32.S"
