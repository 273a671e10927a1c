# Shared by the Cortex-M4 scripts (scripts/cross/cortex-m4.sh, and the instruction-count
# benchmark): the toolchain, the build and the QEMU run. Source it from the repository root.
#
# Toolchain: Debian's second Rust toolchain (rustc-web, with the library source), because it
# builds `core`/`alloc` for any target with -Zbuild-std; rustup's usually has only the host's
# standard library. See ../shared/DESIGN.md, "Building for other targets".

M4_TARGET=thumbv7em-none-eabihf
M4_TARGET_DIR="${M4_TARGET_DIR:-$PWD/target/cortex-m4}"
M4_QEMU=(qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic -monitor none
         -semihosting-config enable=on,target=native)

# Installs what is missing (apt-get; waits for another apt run to finish).
m4_install() {
    local need=()
    { [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] \
        && [ -d /usr/lib/rustlib/src/rust/library/core ]; } \
        || need+=(rustc-web cargo-web rust-web-src)
    command -v qemu-system-arm >/dev/null || need+=(qemu-system-arm)
    command -v arm-none-eabi-gcc >/dev/null || need+=(gcc-arm-none-eabi)
    command -v arm-none-eabi-ld >/dev/null || need+=(binutils-arm-none-eabi)
    [ -d /usr/lib/arm-none-eabi/include ] || need+=(libnewlib-arm-none-eabi)
    [ ${#need[@]} -eq 0 ] && return 0
    echo "installing: ${need[*]}"
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
}

# Debian's cargo and rustc, with -Zbuild-std allowed, whatever rustup or the caller set.
m4_cargo() {
    env -u RUSTFLAGS -u CARGO_BUILD_TARGET -u CARGO_ENCODED_RUSTFLAGS \
        RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_DIR="$M4_TARGET_DIR" CARGO_TERM_COLOR=never /usr/bin/cargo "$@"
}

# m4_build_firmware <bin> <profile> [cargo args...]: builds firmware/<bin> and prints the ELF's path.
# Called as `elf=$(m4_build_firmware ...)`, where `set -e` does not reach inside: a failed build
# returns non-zero explicitly, so the caller stops instead of running a stale ELF.
m4_build_firmware() {
    local bin="$1" profile="$2"
    shift 2
    (cd firmware && m4_cargo build --quiet --locked --profile "$profile" --bin "$bin" \
        --target "$M4_TARGET" -Zbuild-std=core,alloc "$@") >&2 || return 1
    echo "$M4_TARGET_DIR/$M4_TARGET/$profile/$bin"
}

# m4_run <elf> [extra qemu args...]: runs firmware to its semihosting exit (status = QEMU's),
# killed after M4_TIMEOUT seconds (default 600) so a hung firmware fails instead of hanging.
m4_run() {
    local elf="$1"
    shift
    timeout --foreground -k 5 "${M4_TIMEOUT:-600}" "${M4_QEMU[@]}" -kernel "$elf" "$@"
}
