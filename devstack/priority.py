"""CPU priority: the API answers first, the provisioning engine takes the rest.

When the machine is short of CPU (more orders than it can provision, a burst of changes), a website's
`POST /v1/orders` should not wait behind the Temporal server and the worker: what it admits is stored
with its outbox record, and provisioning catches up from there. So the processes that do the
background work (the Temporal server and the worker) run at a lower priority than the API; with CPU to
spare the priority changes nothing. docs/benchmarks.md has what it does to the POST's response times
on a machine offered more orders than it can provision.

`nice(1)` sets it before the program starts, so every thread the program makes has it (a Go server's
threads and the SDK's Rust threads included); renicing a running process would miss threads made
before. Linux groups processes for scheduling by session (autogroup) and shares the CPU equally
between groups, so a priority counts only against processes of the same session: the launchers keep
their children in the launcher's own session.
"""

from collections.abc import Sequence

# On nice(1)'s scale each step weighs about a quarter less: when both want a core, a process at the
# default priority gets about nine times the CPU of one at 10.
BACKGROUND_NICE = 10


def in_background(argv: Sequence[str]) -> list[str]:
    """`argv` run at the background priority."""
    return ["nice", "-n", str(BACKGROUND_NICE), *argv]
