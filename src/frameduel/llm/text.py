"""A sequence's generated text as it grows: incremental detokenization and stop strings.

Text goes out in pieces as tokens arrive, so a stop string may arrive split over several tokens. Text
that could still be the start of a stop string is held back; once a stop string appears, the text
before it is released and the rest is dropped, so the stop string never reaches the client (OpenAI's
rule). A token that completes no UTF-8 character yet (a byte-level token inside a multi-byte
character) adds nothing until the character is whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OutputText:
    decode: Any  # a decoder with step(token_id) -> str | None (llm.tokenizer.Tokenizer.decoder())
    stop: tuple[str, ...] = ()
    text: str = ""  # everything decoded so far
    released: int = 0  # characters of text already handed out
    stopped: bool = field(default=False)

    def add(self, token: int) -> str:
        """Decode one token; return the text that may go out now. Sets `stopped` at a stop string, after
        which nothing more goes out."""
        if self.stopped:
            return ""
        self.text += self.decode(token) or ""
        if not self.stop:
            return self.release(len(self.text))
        found = [index for index in (self.text.find(s, self.released) for s in self.stop) if index >= 0]
        if found:
            self.stopped = True
            piece = self.text[self.released:min(found)]
            self.released = len(self.text)
            return piece
        return self.release(len(self.text) - self.held_back())

    def held_back(self) -> int:
        """Characters at the end of the text that begin some stop string: they wait for the next token."""
        longest = max(len(s) for s in self.stop)
        tail = self.text[max(self.released, len(self.text) - longest + 1):]
        return next((len(tail) - i for i in range(len(tail)) if any(s.startswith(tail[i:]) for s in self.stop)), 0)

    def flush(self) -> str:
        """What is left when generation ends for another reason (length, end of sequence)."""
        return "" if self.stopped else self.release(len(self.text))

    def release(self, end: int) -> str:
        piece = self.text[self.released:end]
        self.released = max(self.released, end)
        return piece
