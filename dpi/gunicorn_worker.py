"""gunicorn's sync worker, woken alone for each new connection (issue #18).

gunicorn's ``SyncWorker`` waits with ``select()`` on the listening socket that every worker shares, so each new
connection wakes every idle worker: one accepts it, the others pay for nothing (select's return, the heartbeat, a
failed ``accept()``, the parent check, select again). With 3 workers and one client that was 0.4 to 0.55 ms of
server CPU per audited FHIR read and about 0.27 ms per ``/healthz``; with more clients than workers a connection
is usually waiting already and a worker accepts it without waiting, so it matters little there.

Here each worker waits on its own epoll set holding the listeners with ``EPOLLEXCLUSIVE`` (Linux 4.5+, as nginx
does), so the kernel wakes one idle worker per connection; a busy worker is not waiting and is not woken, so a
connection still goes to whichever worker is free (unlike ``reuse_port``, whose per-worker queues leave a
connection behind a busy worker while another is idle, and drop the queue of a worker that dies).

Everything else is gunicorn's: the accept loop, the heartbeat before each wait, graceful exit through the worker's
wake-up pipe (also registered, not exclusive: it is the worker's own), EINTR, the parent check. Without epoll
(not Linux) it is gunicorn's worker unchanged.
"""

from __future__ import annotations

import errno
import os
import select

from gunicorn.workers.sync import StopWaiting, SyncWorker

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)


class ExclusiveWakeupSyncWorker(SyncWorker):
    poller = None

    def run(self):
        if hasattr(select, "epoll") and EXCLUSIVE:
            self.poller = select.epoll()
            self.ready_by_fd = {}
            for s in self.sockets:
                self.poller.register(s.fileno(), select.EPOLLIN | EXCLUSIVE)
                self.ready_by_fd[s.fileno()] = s
            self.poller.register(self.PIPE[0], select.EPOLLIN)
            self.ready_by_fd[self.PIPE[0]] = self.PIPE[0]
        super().run()

    def wait(self, timeout):
        if self.poller is None:
            return super().wait(timeout)
        try:
            self.notify()
            ready = [self.ready_by_fd[fd] for fd, _ in self.poller.poll(timeout)]
            if ready:
                if self.PIPE[0] in ready:
                    os.read(self.PIPE[0], 1)
                return ready
        except OSError as e:
            # As gunicorn's select(): interrupted, retry the accept; a listener closed under us, stop (or retry
            # until the first request, as gunicorn does).
            if e.args[0] == errno.EINTR:
                return self.sockets
            if e.args[0] == errno.EBADF:
                if self.nr < 0:
                    return self.sockets
                raise StopWaiting from e
            raise
        return None
