"""What the two-process scripts share: the plan, and rank 0's edit of the policy file
before step EDIT_AT (the new version sets the LR from then on, logs once, saves at
that step and rolls back to it five steps later, on every rank alike)."""

import os
import time

EPOCHS, EDIT_AT = 3, 10
UNEDITED = "fn on_step(ctx) { () }\n"
EDITED = """fn on_step(ctx) {
    if ctx.step == %d { #{ lr: 0.001, log: "edited", save: true } }
    else if ctx.step == %d { #{ lr: 0.001, rollback: "last" } }
    else { #{ lr: 0.001 } }
}
""" % (EDIT_AT, EDIT_AT + 5)


def save_edit(policy, seen, seconds=10.0):
    """Saves EDITED over `policy` as an editor does (renamed over it), then waits until
    `seen()` (the watcher has seen it)."""
    tmp = policy + ".tmp~"
    with open(tmp, "w") as f:
        f.write(EDITED)
    os.replace(tmp, policy)
    end = time.monotonic() + seconds
    while not seen() and time.monotonic() < end:
        time.sleep(0.02)
