"""PASS/FAIL lines for the compat scripts, and their counts.

    check = Checks()
    check("the node is there", stat is not None, detail)
    sys.exit(check.summary())
"""


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS: {name}")
        else:
            self.failed += 1
            print(f"FAIL: {name} {detail}")

    def summary(self):
        """Prints the counts; the exit status (1 when a check failed)."""
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0
