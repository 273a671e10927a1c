#!/bin/sh
# A RUSTC_WORKSPACE_WRAPPER (cargo runs it as `wrapper <rustc> <args...>` for this crate's own
# units only) that adds `-C target-feature=$EDGEMM_WRAP_FEATURES` to the units compiled for
# the target triple $EDGEMM_WRAP_TARGET. Used by scripts/cross/aarch64.sh to build the no-std
# kernel battery with extension kernels enabled at compile time, without touching the
# standard library built by -Zbuild-std (RUSTFLAGS would rebuild it) or the host build script
# (which would warn about features its own target does not have).
rustc="$1"
shift
case " $* " in
*" --target $EDGEMM_WRAP_TARGET "*)
    exec "$rustc" "$@" -C "target-feature=$EDGEMM_WRAP_FEATURES"
    ;;
esac
exec "$rustc" "$@"
