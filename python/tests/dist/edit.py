"""What the two-process scripts share: the plan, rank 0's edit of the policy file
before step EDIT_AT (the new version sets the LR from then on, logs once, saves at
that step and rolls back to it five steps later, on every rank alike), and the end of
a rank."""

import os
import sys
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


def finish():
    """Ends a rank once its results are written: every rank waits for the others, the
    process group comes down, and the process exits without the interpreter's
    teardown. torch's C++ teardown after that point aborted now and then ("terminate
    called without an active exception", exit -6; once in CI, about 1 in 30 runs
    here, and in a plain torchrun loop of the examples too), after training and its
    files were done: not what these tests are about."""
    import torch.distributed as dist
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
