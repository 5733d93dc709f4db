"""A verify check with a real hang, for testing the pool's hard timeout: for the reference "HANG" the
worker spins in a busy loop that no signal-based timeout interrupts (like a pathological sympy call in
C code); everything else goes to the real math-verify check."""

from service.judge.verifier import check_answer, warm_up  # noqa: F401 - the pool runs warm_up in each new worker


def check(reference: str, response: str):
    if reference == "HANG":
        while True:
            pass
    return check_answer(reference, response)
