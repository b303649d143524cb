"""Add up the test cases of a `make check` run from its logs and print
'N passed, N failed, N skipped'."""

import glob
import re
import sys

passed = failed = skipped = 0
for trs in sorted(glob.glob('tests/**/*.trs', recursive=True)):
    with open(trs) as f:
        result = re.search(r'^:test-result: (\w+)', f.read(), re.M).group(1)
    with open(trs[:-4] + '.log', errors='replace') as f:
        log = f.read()
    py = re.findall(r'^(\d+) passed, (\d+) failed$', log, re.M)
    ck = re.findall(r'^\d+%: Checks: (\d+), Failures: (\d+), Errors: (\d+)',
                    log, re.M)
    if result == 'SKIP':
        skipped += 1
    elif py:
        passed += int(py[-1][0])
        failed += int(py[-1][1])
    elif ck:
        n, f_, e = map(int, ck[-1])
        passed += n - f_ - e
        failed += f_ + e
    elif result == 'PASS':
        passed += 1
    else:
        failed += 1
print('%d passed, %d failed, %d skipped' % (passed, failed, skipped))
sys.exit(1 if failed else 0)
