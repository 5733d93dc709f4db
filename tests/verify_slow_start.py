"""A verify check with a slow, explicit start-up, for testing that the pool pays a new worker's start-up before
the worker reports ready. ``warm_up()`` takes ``START_UP_S``; a worker that was not warmed up pays it in its
first check instead, as math-verify's imports and first parse are paid by a cold worker's first check (0.4-1.2 s
measured on these machines, which is too close to any item limit a test could use to fail reliably). The
reference "HANG" hangs, so a test can have a worker replaced."""

import time

START_UP_S = 1.0
_started = False


def warm_up() -> None:
    global _started
    time.sleep(START_UP_S)
    _started = True


def check(reference: str, response: str):
    if not _started:
        warm_up()
    if reference == "HANG":
        while True:
            pass
    return ("correct" if reference in response else "incorrect"), None
