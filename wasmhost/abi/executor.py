"""What every guest interface's executor does, so that the sandbox drives them all alike.

An executor is one guest interface (`handler.py`, `wagi.py`; a third, `component`, will follow
the same shape). For one call it turns the request into the interface's inputs, makes one call
through the process's `CallPath` (C or ctypes: the executor does not know which) and reads the
answer back as a `Response` or a classified error. What is the same for every interface —
the Store's limits, the host functions' state, faults (traps, fuel, deadline, memory) — is the
sandbox's; an executor decides only what is its own:

- `inputs(request, version)`: the request as the guest gets it (raise a `WasmhostError` for a
  request this interface cannot take);
- `call(prepared, version, inputs, key, fuel, host_calls)`: one fresh-instance call;
- `response(raw, inputs)`: an answer from a call that ended (raise `BadResponse` and the like
  for an answer that breaks the interface);
- `exit_error(fault)`: what a WASI exit means here (None: the program ended normally).

Adding an interface: a module here with such a class, its name in `models.Abi`, its detection
in `detect.py`, one line in `Sandbox.__init__`, and the sandbox and HTTP tests run for it
(docs/ARCHITECTURE.md, "Adding a guest interface").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..errors import WasmhostError
from ..models import FunctionVersion, Request, Response
from ..native import GuestFault, RawCall

if TYPE_CHECKING:
    from ..cache import PreparedModule


class Executor(Protocol):
    abi: str
    captures_stdout: bool  # fd 1 is the answer (else it is log lines)

    def inputs(self, request: Request, version: FunctionVersion) -> Any: ...

    def call(self, prepared: "PreparedModule", version: FunctionVersion, inputs: Any, key: int, fuel: int,
             host_calls: int) -> RawCall: ...

    def response(self, raw: RawCall, inputs: Any) -> Response: ...

    def exit_error(self, fault: GuestFault) -> WasmhostError | None: ...
