#!/bin/sh
# configure refuses, with a clear message, MIT headers without the KDB DAL
# version the module is written for, and a missing kdb.h.
top=$(cd "${TK_SRCDIR:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A copy of what configure reads, so the source tree stays untouched.
mkdir -p "$tmp/src/plugin" "$tmp/fake"
cp -R "$top/configure" "$top/build-aux" "$top/config.h.in" "$top/Makefile.in" \
    "$tmp/src/" || { echo "FAIL: run autoreconf first"; exit 1; }
cp "$top/plugin/tempkey.c" "$tmp/src/plugin/"
status=0

cat > "$tmp/fake/kdb.h" <<'H'
#define KRB5_KDB_DAL_MAJOR_VERSION 8
H
out=$(cd "$tmp/src" && KDB_CFLAGS="-I$tmp/fake" KDB_LIBS=-lkdb5 ./configure 2>&1)
if [ $? -eq 0 ]; then
    echo "FAIL: configure accepted DAL version 8"; status=1
elif echo "$out" | grep -q "does not declare KDB DAL major version 9"; then
    echo "PASS: wrong DAL version refused"
else
    echo "FAIL: unclear message for a wrong DAL version:"; echo "$out" | tail -3
    status=1
fi

out=$(cd "$tmp/src" && ac_cv_header_kdb_h=no ./configure 2>&1)
if [ $? -eq 0 ]; then
    echo "FAIL: configure went on without kdb.h"; status=1
elif echo "$out" | grep -q "kdb.h not found; install krb5-multidev"; then
    echo "PASS: missing kdb.h refused"
else
    echo "FAIL: unclear message for a missing kdb.h:"; echo "$out" | tail -3
    status=1
fi
[ $status -eq 0 ] && echo "2 passed, 0 failed"
exit $status
