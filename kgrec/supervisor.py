"""``kgrec serve --workers N`` on Linux: uvicorn's supervisor, with a listening socket of its own for each worker.

uvicorn's ``--workers`` binds one socket in the parent and hands it to every worker; the workers' event loops race to
accept from it, and the one that wakes first takes every connection waiting (asyncio accepts up to the backlog at a
wake-up). A client that opens its keep-alive pool at once (a proxy, a service's connection pool, a benchmark's 16
connections) lands on one worker, which serves at one process's speed while the others idle. Here each worker slot
has its own socket bound with ``SO_REUSEPORT`` to the same address, and the kernel hashes each new connection (its
addresses and ports) to one of the listening sockets, as nginx's ``reuse_port`` and Envoy spread connections.

The parent binds the sockets before any worker starts and keeps them open for its whole life, so that a socket is never
closed with connections in its queue (they would be dropped): a worker that dies is replaced on its socket (the
connections the kernel gives that socket meanwhile wait in its queue until the replacement serves, its start-up time),
and SIGHUP's rolling restart starts each new worker on the socket of the one it replaces. SIGTTIN binds one more socket
for the new worker; SIGTTOU closes the retired worker's (what waits in its queue is dropped, unless the kernel's
``net.ipv4.tcp_migrate_req`` moves it to the others). Everything else is uvicorn's
:class:`~uvicorn.supervisors.Multiprocess`: health pings, restarts, signals. uvicorn creates each worker inline with
the one shared socket list, so the methods that create workers are rewritten here with the worker's own socket.
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")


def reuse_port_balances() -> bool:
    """Whether the kernel spreads connections over sockets bound with ``SO_REUSEPORT`` (Linux); elsewhere (macOS, the
    BSDs) the option lets sockets share a port but one of them takes every connection, and Windows has no such option."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor where worker ``i`` (and every replacement of it) listens on socket ``i`` of its own."""

    def __init__(self, config: Config) -> None:
        port = _free(config.host, config.port)
        self.listeners = [_bind(config.host, port) for _ in range(config.workers)]
        super().__init__(config, sockets=[])  # the shared list uvicorn would hand to every worker: none here
        scheme = "https" if config.is_ssl else "http"
        host = f"[{config.host}]" if ":" in config.host else config.host
        logger.info(
            "Uvicorn running on %s://%s:%d, a listening socket per worker (Press CTRL+C to quit)", scheme, host, port
        )

    def run(self) -> None:
        """Supervise the workers until a signal stops them, then close the parent's sockets."""
        try:
            super().run()
        finally:
            for listener in self.listeners:
                listener.close()

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.listeners[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        """Start one worker on each socket."""
        self.processes = [self._start(slot) for slot in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        """uvicorn's: kill a worker that is dead or does not answer its ping, start its replacement on its socket."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # the app cannot start: every replacement would fail the same way
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died")
            self.processes[slot] = self._start(slot)

    def restart_all(self) -> None:
        """uvicorn's SIGHUP: each worker's replacement starts on its socket and serves before the worker is retired."""
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self._start(slot)
            if not new_process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(
                        f"New child process [{new_process.pid}] was not ready in time; "
                        f"keeping worker [{old_process.pid}] and aborting the restart."
                    )
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def handle_ttin(self) -> None:
        """SIGTTIN: one more worker, on a socket of its own."""
        logger.info("Received SIGTTIN, increasing the number of processes.")
        self.listeners.append(_bind(self.config.host, self.listeners[0].getsockname()[1]))
        self.processes_num += 1
        self.processes.append(self._start(len(self.listeners) - 1))

    def handle_ttou(self) -> None:
        """SIGTTOU: one worker fewer; its socket is closed once it has stopped."""
        logger.info("Received SIGTTOU, decreasing number of processes.")
        if self.processes_num <= 1:
            logger.info("Already reached one process, cannot decrease the number of processes anymore.")
            return
        self.processes_num -= 1
        process = self.processes.pop()
        process.terminate()
        process.join()
        self.listeners.pop().close()


def run_workers(config: Config) -> None:
    """Serve ``config`` with ``config.workers`` worker processes, each accepting on a socket of its own."""
    try:
        ReusePortMultiprocess(config).run()
    except KeyboardInterrupt:  # as uvicorn.run: Ctrl-C before the supervisor's own handlers are set
        pass


def _free(host: str, port: int) -> int:
    """Bind ``host:port`` without ``SO_REUSEPORT`` and let it go, to refuse a port something already listens on: a
    second server's ``SO_REUSEPORT`` sockets would otherwise join the first's, and the two would share its connections
    without a word. Returns the port (the one the kernel chose when ``port`` is 0)."""
    with _socket(host) as probe:
        _bind_or_exit(probe, host, port)
        return probe.getsockname()[1]


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` beside the other workers' (``SO_REUSEPORT``), inherited by a worker process."""
    sock = _socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    _bind_or_exit(sock, host, port)
    sock.set_inheritable(True)
    return sock


def _socket(host: str) -> socket.socket:
    """A TCP socket of ``host``'s family with ``SO_REUSEADDR``, as uvicorn binds its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _bind_or_exit(sock: socket.socket, host: str, port: int) -> None:
    """Bind, or log why not and exit with uvicorn's start-up failure code, as uvicorn does."""
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)


__all__ = ["ReusePortMultiprocess", "reuse_port_balances", "run_workers"]
