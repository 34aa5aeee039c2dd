"""test/bad_input/catalogue.py: reads cases.tsv, the bad-input catalogue."""
import collections
import os

Case = collections.namedtuple("Case", "line kind expect fragment input doc")
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.tsv")


def load(path=PATH):
    cases = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 5 or cols[0] not in ("sql", "cli", "http", "doc"):
                raise ValueError("%s:%d: want 5 tab-separated columns, kind sql|cli|http|doc" % (path, n))
            cases.append(Case(n, *cols))
    return cases
