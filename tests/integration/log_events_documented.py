"""Every log event that engine/, pools/ and scripts/ emit is named, in backticks, somewhere in
README.md or docs/*.md: an operator who greps the log for an event finds what it means.

An event is the first lower_snake string literal after a logging call on the same line
(log_message, log_emit, log_poll_failure in C; m2p.log, native.log in Lua; both names of a
`cond ? "a" : "b"` choice count). A docs name ending in `*` (`socketio_*`) covers a family.
"""

import glob
import os
import re
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CALL = re.compile(r'\b(log_message|log_emit|log_poll_failure|m2p\.log|native\.log)\s*\(')
NAME = re.compile(r'"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)"')


def emitted():
    events = {}
    patterns = ["engine/**/*.c", "engine/**/*.lua", "pools/*.lua", "scripts/*.lua"]
    for pattern in patterns:
        for path in glob.glob(os.path.join(REPO, pattern), recursive=True):
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    m = CALL.search(line)
                    if m:
                        for name in NAME.findall(line[m.end():]):
                            events.setdefault(name, "%s:%d" % (os.path.relpath(path, REPO),
                                                               number))
    return events


def documented():
    text = ""
    for path in glob.glob(os.path.join(REPO, "docs", "*.md")) + [os.path.join(REPO, "README.md")]:
        with open(path, encoding="utf-8") as f:
            text += f.read()
    names = set(re.findall(r'`([a-z0-9_*]+)`', text))
    return names, [n[:-1] for n in names if n.endswith("*")]


def main():
    events = emitted()
    names, families = documented()
    missing = sorted(e for e in events
                     if e not in names and not any(e.startswith(f) for f in families))
    if len(events) < 50:
        print("FAIL only %d log events found: the scan is broken" % len(events))
        return 1
    for e in missing:
        print("FAIL log event `%s` (%s) is not named in the docs" % (e, events[e]))
    if not missing:
        print("ok   %d log events, each named in the docs" % len(events))
    return 1 if missing else 0


sys.exit(main())
