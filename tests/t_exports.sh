#!/bin/sh
# Each module exports its entry points and nothing else, and the preauth
# module (also loaded by clients) does not depend on libkdb5.
top="${TK_BUILDDIR:-.}"
command -v nm >/dev/null || { echo "SKIP: nm (binutils) not installed"; exit 77; }
status=0
check() {
    so=$1; want=$2
    [ -f "$so" ] || { echo "FAIL: $so not built"; status=1; return; }
    got=$(nm -D --defined-only "$so" | awk '{print $3}' | sort | tr '\n' ' ')
    if [ "$got" = "$want" ]; then
        echo "PASS: $so exports only: $want"
    else
        echo "FAIL: $so exports: $got (wanted: $want)"; status=1
    fi
}
check "$top/plugin/.libs/tempkey.so" "kdb_function_table "
check "$top/preauth/.libs/tempkey.so" \
    "clpreauth_tempkey_initvt kdcpreauth_tempkey_initvt "
pre="$top/preauth/.libs/tempkey.so"
if readelf -d "$pre" | grep NEEDED | grep -q libkdb5; then
    echo "FAIL: the preauth module links libkdb5"; status=1
elif nm -D "$pre" | grep -q ' U krb5_db_'; then
    echo "FAIL: the preauth module needs libkdb5 symbols to load"; status=1
else
    echo "PASS: the preauth module loads without libkdb5"
fi
[ $status -eq 0 ] && echo "3 passed, 0 failed"
exit $status
