# shellcheck shell=bash
# The load generator of scripts/bench and scripts/instructions: oha, at a pinned version,
# installed with `cargo install --locked` into .bench/oha (git-ignored; reused when present).
# OHA=PATH uses another oha binary instead. oha_install sets and exports OHA.

oha_version=1.16.0

oha_install() {
    local root=$1
    [ -n "${OHA:-}" ] && { export OHA; return; }
    local dir=$root/.bench/oha
    if [ "$("$dir/bin/oha" --version 2>/dev/null)" != "oha $oha_version" ]; then
        echo "installing oha $oha_version into $dir"
        cargo install oha --locked --version "$oha_version" --root "$dir"
    fi
    export OHA=$dir/bin/oha
}
