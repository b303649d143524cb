#!/bin/sh
# The KDB module exports its entry point and nothing else.
so="${TK_BUILDDIR:-.}/plugin/.libs/tempkey.so"
command -v nm >/dev/null || { echo "SKIP: nm (binutils) not installed"; exit 77; }
[ -f "$so" ] || { echo "FAIL: $so not built"; exit 1; }
syms=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
echo "exported: $syms"
if [ "$syms" != "kdb_function_table" ]; then
    echo "FAIL: $so must export only kdb_function_table"
    exit 1
fi
echo "PASS: only kdb_function_table is exported"
