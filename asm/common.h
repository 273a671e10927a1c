/* Shared by every assembly file: the versioned symbol name of a kernel.
 * build.rs defines EDGEMM_PREFIX as edgemm_<major>_<minor>_<patch>_ ; the Rust side builds
 * the same name with concat!(..., env!("CARGO_PKG_VERSION_*"), ...). */
#define EDGEMM_CAT_(a, b) a##b
#define EDGEMM_CAT(a, b) EDGEMM_CAT_(a, b)
#define EDGEMM_SYM(name) EDGEMM_CAT(EDGEMM_PREFIX, name)
