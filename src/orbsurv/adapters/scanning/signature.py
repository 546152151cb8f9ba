"""SignatureScanner: the default malware scanner, with no external service.

It finds two things anywhere in a stream, not only at its start: the EICAR anti-malware test
signature (the 68-byte string every scanner recognises, https://www.eicar.org/download-anti-malware-testfile/),
including where it straddles two chunks, and whole streams whose SHA-256 is on a configured
denylist (``MALWARE_SHA256_DENYLIST``). Memory stays constant: it keeps the last 67 bytes of the
stream and one running digest. With an empty denylist no digest is computed.

It is a floor, not an antivirus: production deployments point ``MALWARE_SCANNER=clamd`` at a
clamd that carries real signatures.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable

from orbsurv.application.ports import ScanVerdict

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_NAME = "Eicar-Test-Signature"
_THREAD_THRESHOLD = 256 * 1024  # larger chunks are hashed off the event loop


class SignatureScanSession:
    def __init__(self, denylist: frozenset[str]) -> None:
        self._denylist = denylist
        self._digest = hashlib.sha256() if denylist else None
        self._tail = b""
        self._found: str | None = None

    async def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._found is None:
            keep = len(EICAR) - 1
            if EICAR in self._tail + chunk[:keep] or EICAR in chunk:
                self._found = EICAR_NAME
            self._tail = (self._tail + chunk[-keep:])[-keep:]
        if self._digest is not None:
            if len(chunk) >= _THREAD_THRESHOLD:
                await asyncio.to_thread(self._digest.update, chunk)
            else:
                self._digest.update(chunk)

    async def finish(self) -> ScanVerdict:
        if self._found is not None:
            return ScanVerdict(self._found)
        if self._digest is not None and self._digest.hexdigest() in self._denylist:
            return ScanVerdict("Denylisted-SHA256")
        return ScanVerdict()

    async def abort(self) -> None:
        self._digest = None


class SignatureScanner:
    """``MalwareScanner`` for EICAR and a SHA-256 denylist (lower-case hex digests)."""

    def __init__(self, denylist: Iterable[str] = ()) -> None:
        self._denylist = frozenset(d.strip().lower() for d in denylist if d.strip())

    async def open(self) -> SignatureScanSession:
        return SignatureScanSession(self._denylist)
