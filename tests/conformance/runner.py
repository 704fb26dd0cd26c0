"""Runs the `test_*` functions of a conformance script and prints `N passed, N failed`."""

import traceback


def run(namespace, label):
    tests = [(n, f) for n, f in sorted(namespace.items()) if n.startswith("test_") and callable(f)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
            print(f"ok      {name}")
        except Exception:
            failed += 1
            print(f"FAILED  {name}")
            traceback.print_exc()
    print(f"{label}: {len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0
