"""ClamdScanner: malware scanning by a clamd daemon over its INSTREAM command.

Protocol (clamd(8), "INSTREAM"): send ``zINSTREAM\\0``, then the stream as chunks, each prefixed
by its length as a 4-byte unsigned big-endian integer, then a zero-length chunk; clamd answers
``stream: OK``, ``stream: <signature> FOUND`` or ``... ERROR``. One connection per scan, opened
by ``open``, fed as the bytes pass, so an upload is scanned while it streams.

Nothing passes silently: a clamd that cannot be reached, times out (``timeout`` seconds per
operation, ``connect_timeout`` seconds to connect), closes or resets the connection, or answers
anything but OK or FOUND raises ``ScannerUnavailable`` (HTTP 503). clamd refuses streams past
its ``StreamMaxLength`` (default 25 MiB) with an error, so that setting must be at least
``MAX_UPLOAD_BYTES``; its ``ReadTimeout`` must outlast the slowest expected gap between two
chunks of an upload.

The address is ``tcp://host:port`` or ``unix:///path/to/clamd.ctl`` (a bare path means a Unix
socket).
"""

from __future__ import annotations

import asyncio
import struct
from urllib.parse import urlsplit

from orbsurv.application.errors import ScannerUnavailable
from orbsurv.application.ports import ScanVerdict

MAX_CHUNK = 1024 * 1024  # bytes per INSTREAM frame; clamd reads frames into memory
_END = struct.pack("!L", 0)


#: What a clamd connection raises when clamd (not our code) fails: the socket's errors, the
#: timeouts, and the ``RuntimeError`` uvloop raises for a write on a transport a reset closed
#: underneath the stream ("unable to perform operation on <TCPTransport closed=True>").
SOCKET_FAULTS: tuple[type[Exception], ...] = (OSError, TimeoutError, RuntimeError)


def parse_address(address: str) -> tuple[str, int] | str:
    """``(host, port)`` for ``tcp://host:port``, a path for ``unix:///path`` or a bare path."""
    if address.startswith("tcp://"):
        parts = urlsplit(address)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"clamd address needs a host and a port: {address!r}")
        return parts.hostname, parts.port
    if address.startswith("unix://"):
        return address.removeprefix("unix://")
    if address.startswith("/"):
        return address
    raise ValueError(f"clamd address must be tcp://host:port or unix:///path: {address!r}")


class ClamdScanSession:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._closed = False

    async def _send(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            async with asyncio.timeout(self._timeout):
                await self._writer.drain()
        except SOCKET_FAULTS as error:
            await self.abort()
            raise ScannerUnavailable(
                "The malware scanner stopped answering; the file was not kept."
            ) from error

    async def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        for start in range(0, len(view), MAX_CHUNK):
            frame = view[start : start + MAX_CHUNK]
            await self._send(struct.pack("!L", len(frame)) + bytes(frame))

    async def finish(self) -> ScanVerdict:
        await self._send(_END)
        try:
            async with asyncio.timeout(self._timeout):
                raw = await self._reader.read(4096)
        except SOCKET_FAULTS as error:
            raise ScannerUnavailable("The malware scanner gave no verdict in time.") from error
        finally:
            await self.abort()
        answer = raw.rstrip(b"\0\n").decode("utf-8", "replace")
        if answer.endswith(" FOUND"):
            signature = answer.removeprefix("stream:").removesuffix(" FOUND").strip()
            return ScanVerdict(signature or "unknown")
        if answer.endswith(": OK") or answer == "stream: OK":
            return ScanVerdict()
        raise ScannerUnavailable(f"The malware scanner gave no verdict ({answer[:120]!r}).")

    async def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        try:
            async with asyncio.timeout(self._timeout):
                await self._writer.wait_closed()
        except SOCKET_FAULTS:
            pass


class ClamdScanner:
    """``MalwareScanner`` backed by clamd (TCP or Unix socket)."""

    def __init__(
        self, address: str, *, timeout: float = 30.0, connect_timeout: float = 3.0
    ) -> None:
        """``timeout``: seconds any one send or read may take; ``connect_timeout``: seconds to
        open the connection."""
        self._address = parse_address(address)
        self._timeout = timeout
        self._connect_timeout = connect_timeout

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self._connect_timeout):
                if isinstance(self._address, str):
                    return await asyncio.open_unix_connection(self._address)
                host, port = self._address
                return await asyncio.open_connection(host, port)
        except SOCKET_FAULTS as error:
            raise ScannerUnavailable(
                "The malware scanner cannot be reached; try again later."
            ) from error

    async def open(self) -> ClamdScanSession:
        reader, writer = await self._connect()
        session = ClamdScanSession(reader, writer, self._timeout)
        await session._send(b"zINSTREAM\0")
        return session

    async def ping(self) -> None:
        """Return when clamd answers ``PING`` with ``PONG``; raise ``ScannerUnavailable``."""
        reader, writer = await self._connect()
        try:
            async with asyncio.timeout(self._timeout):
                writer.write(b"zPING\0")
                await writer.drain()
                answer = await reader.read(64)
        except SOCKET_FAULTS as error:
            raise ScannerUnavailable("The malware scanner does not answer.") from error
        finally:
            writer.close()
        if answer.rstrip(b"\0\n") != b"PONG":
            raise ScannerUnavailable("The malware scanner does not answer PING.")
