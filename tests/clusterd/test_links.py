"""Links to a slow peer: real daemons on loopback, the peer's side of every connection held back by a proxy."""

from __future__ import annotations

import asyncio
import threading

from clusterd.local import Cluster

HELD = 2.5
"""Seconds the peer's first bytes (its SSH banner) are held: over the detection time (0.6 s), within the patience."""
PROXY = "127.0.0.99"


class SlowProxy:
    """Forwards ``PROXY:port`` to ``target:port`` for each port; what comes back starts :data:`HELD` seconds late."""

    def __init__(self, target: str, ports: list[int]) -> None:
        self.target, self.ports = target, ports
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        servers = [self.loop.run_until_complete(asyncio.start_server(
            lambda r, w, p=port: self._serve(r, w, p), PROXY, port)) for port in self.ports]
        self.ready.set()
        self.loop.run_forever()
        for server in servers:
            server.close()
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        try:
            peer_reader, peer_writer = await asyncio.open_connection(self.target, port)
        except OSError:
            writer.close()
            return

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, held: float) -> None:
            await asyncio.sleep(held)
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, peer_writer, 0.0), pipe(peer_reader, writer, HELD))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_a_link_waits_out_a_slow_handshake_instead_of_giving_up_at_the_detection_time(cluster_factory):
    cluster: Cluster = cluster_factory([0, 1], hold=1.0)
    real = cluster.address(1)
    for path in (cluster.config(0), cluster.dir(0) / "state" / "known_hosts"):  # server 0 reaches 1 by the proxy
        path.write_text(path.read_text().replace(real, PROXY))
    control = cluster.base + 1
    proxy = SlowProxy(real, [control, cluster.ssh_port(1)])
    try:
        cluster.start_all()
        cluster.wait("server 0's link to server 1 up through the slow proxy",
                     lambda: f"link to server 1 up ({PROXY}:{control})" in cluster.log(0) or None, 60)
        cluster.wait("complete", lambda: (cluster.status(0) or {}).get("status") == "complete" or None, 60)
        assert "timed out" not in cluster.log(0), "no handshake was abandoned"
    finally:
        cluster.stop_all()
        proxy.stop()
