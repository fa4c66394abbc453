"""Token ids to text, the one home for it: one token's text, its label with whitespace made visible (for tables and
heatmap axes), and incremental decoding of a completion as tokens arrive."""
from __future__ import annotations


def token_text(tokenizer, token_id: int) -> str:
    """The decoded text of one token, special tokens included (``"<|im_end|>"``)."""
    return tokenizer.decode([int(token_id)], skip_special_tokens=False)


def token_texts(tokenizer, token_ids) -> list[str]:
    """``token_text`` of each id."""
    return [token_text(tokenizer, i) for i in token_ids]


def token_label(tokenizer, token_id: int) -> str:
    """Readable label of one token: its decoded text, with whitespace made visible."""
    text = token_text(tokenizer, token_id).replace("\n", "⏎").replace("\t", "⇥").replace("\r", "")
    stripped = text.strip()
    return stripped if stripped else "␣"


class TokenDecoder:
    """Token → text with a cache, and incremental decoding of the completion: ``append`` returns the new text, or ""
    while the bytes so far end inside a multi-byte character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.cache: dict[int, str] = {}
        self.ids: list[int] = []
        self.text = ""

    def token(self, token_id: int) -> str:
        if token_id not in self.cache:
            self.cache[token_id] = token_text(self.tokenizer, token_id)
        return self.cache[token_id]

    def append(self, token_id: int) -> str:
        self.ids.append(token_id)
        full = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if full.endswith("\ufffd") or not full.startswith(self.text):
            if not full.startswith(self.text):  # rare re-segmentation: resync without re-emitting text
                self.text = full
            return ""
        piece, self.text = full[len(self.text):], full
        return piece
