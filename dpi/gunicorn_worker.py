"""gunicorn's sync worker, woken alone for a new connection (issue #18).

Every sync worker waits for the listening socket with ``select()``: a new connection wakes all of them, one
accepts it and the others find nothing (``EAGAIN``) and go back to sleep, each after a heartbeat and a few
system calls. With three workers, that was about 0.5 ms of server CPU per request on two cores. This worker
waits on an epoll set with the listener registered ``EPOLLEXCLUSIVE`` (Linux 4.5+): the kernel wakes one
waiting worker per connection. Everything else (accept, parsing, the application, the heartbeat, signals,
timeouts) is the sync worker's own. Where epoll or ``EPOLLEXCLUSIVE`` is missing it is the sync worker.
"""

from __future__ import annotations

import errno
import os
import select

from gunicorn.workers.sync import StopWaiting, SyncWorker

_EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", None)


class ExclusiveSyncWorker(SyncWorker):
    _poller = None

    def _epoll(self):
        if self._poller is None:
            poller = select.epoll()
            for sock in self.sockets:
                poller.register(sock.fileno(), select.EPOLLIN | _EXCLUSIVE)
            poller.register(self.PIPE[0], select.EPOLLIN)
            self._poller = poller
        return self._poller

    def wait(self, timeout):
        if _EXCLUSIVE is None or not hasattr(select, "epoll"):
            return super().wait(timeout)
        try:
            self.notify()
            ready = [fd for fd, _ in self._epoll().poll(timeout)]
        except OSError as e:
            if e.args[0] == errno.EINTR:
                return self.sockets
            if e.args[0] == errno.EBADF:
                if self.nr < 0:
                    return self.sockets
                raise StopWaiting from e
            raise
        if not ready:
            return None
        if self.PIPE[0] in ready:
            os.read(self.PIPE[0], 1)
        return [s for s in self.sockets if s.fileno() in ready] + ([self.PIPE[0]] if self.PIPE[0] in ready else [])
