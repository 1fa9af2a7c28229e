"""A request's `on_text` as the runtime hands it to the provider: scrubbed, and knowing whether any text
went out (after which a failure is final: a retry would send the reply's start again).

Scrubbing a stream: an API key may arrive split across deltas (`sk-te`, `st-SECRET…`), so a delta is
not passed on whole. The text received but not yet passed on is kept; every complete key in it is
replaced by `***`, and all of it is passed on except its longest tail that is the start of a key,
which waits for the next delta (or the end of the reply, when it is passed on as it is: a key's
start is not the key). A stream without keys to scrub (the sim, `local`, a keyless server) passes
each delta on at once. The text passed on is then exactly the scrubbed reply `Runtime.account` keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class TextStream:
    """What one request streams (`Runtime.complete` makes one per request with `on_text`)."""

    __slots__ = ("_emit", "_secrets", "_held", "emitted")

    def __init__(self, emit: Callable[[str], None], secrets: Iterable[str] = ()) -> None:
        self._emit = emit
        self._secrets = tuple(s for s in secrets if s)
        self._held = ""  # received, not yet passed on: it may be the start of a key
        self.emitted = False  # some text reached `emit`: the request can no longer be retried

    def push(self, delta: str) -> None:
        """A delta from the provider (`Request.on_text` as the provider sees it)."""
        if not delta:
            return
        if not self._secrets:
            self._pass(delta)
            return
        text = self._held + delta
        for secret in self._secrets:
            text = text.replace(secret, "***")
        keep = _key_start(text, self._secrets)
        self._held = text[len(text) - keep:] if keep else ""
        if keep < len(text):
            self._pass(text[:len(text) - keep])

    def restart(self) -> None:
        """Before a retry of a request nothing of which went out: forget what was held back."""
        self._held = ""

    def finish(self, text: str) -> None:
        """The request answered with `text` (already scrubbed): pass on what was held back, or the whole
        text when the provider streamed nothing (it cannot stream, or the answer came from the cache)."""
        if not self.emitted and not self._held:
            if text:
                self._pass(text)
            return
        held, self._held = self._held, ""
        if held:
            self._pass(held)

    def _pass(self, text: str) -> None:
        self.emitted = True  # first: an `emit` that raises still counts as text gone out
        self._emit(text)


def _key_start(text: str, secrets: tuple[str, ...]) -> int:
    """The length of the longest tail of `text` that is a proper prefix of one of `secrets`."""
    best = 0
    for secret in secrets:
        for k in range(min(len(secret) - 1, len(text)), best, -1):
            if text.endswith(secret[:k]):
                best = k
                break
    return best
