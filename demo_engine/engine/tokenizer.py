"""SmolLM2's byte-level BPE tokenizer, built from the GGUF metadata with the `tokenizers` library.

Text in, token ids out, and back; plus `StreamDecoder`, which turns a stream of ids into text deltas that
never split a multi-byte UTF-8 character. Knows nothing about the model or chat turns.

Text is always text: `encode` never turns `<|im_start|>` or `<|im_end|>` written in a string into the control
tokens (a visitor typing them must not open a system turn). Control tokens are placed by id, by the chat template.

Building the tokenizer means reading 49,152 tokens and 48,900 merges out of the GGUF arrays (seconds),
so the result is cached as `tokenizer.json` under the var directory (`SHOWCASE_VAR_DIR`, default `var/`
at the repository root).
"""

from __future__ import annotations

import codecs
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from demo_engine.engine.gguf_loader import GGUFFile

TOKEN_TYPE_CONTROL = 3  # llama.cpp's token type for special tokens such as <|im_end|>
CACHE_FORMAT = "1"
BOS_TOKEN = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"  # bump when the way the tokenizer is built changes


def var_dir() -> Path:
    """Where run-time caches live: `SHOWCASE_VAR_DIR`, else `var/` at the repository root."""
    configured = os.environ.get("SHOWCASE_VAR_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "var"


@lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (the alphabet of the vocabulary)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def _build_from_gguf(gguf_file: GGUFFile) -> Tokenizer:
    """The tokenizer the metadata describes: SmolLM2's own layout (individual digits, then byte-level)."""
    tokens: list[str] = gguf_file.metadata("tokenizer.ggml.tokens")  # type: ignore[assignment]
    merges: list[str] = gguf_file.metadata("tokenizer.ggml.merges")  # type: ignore[assignment]
    token_types: list[int] = gguf_file.metadata("tokenizer.ggml.token_type")  # type: ignore[assignment]
    vocab = {token: index for index, token in enumerate(tokens)}
    merge_pairs = [tuple(merge.split(" ", 1)) for merge in merges]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False))
    # The GGUF names this pre-tokenizer "smollm": llama.cpp splits every digit on its own, then applies the
    # GPT-2 regex. The vocabulary holds no token with a digit beside another character, so this matches
    # a plain byte-level split too (what transformers builds from the same file).
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    special = [
        AddedToken(token, special=True, normalized=False)
        for token, kind in zip(tokens, token_types, strict=True)
        if kind == TOKEN_TYPE_CONTROL
    ]
    tokenizer.add_special_tokens(special)
    return tokenizer


def _cache_path(gguf_path: str) -> Path:
    stat = os.stat(gguf_path)
    key = hashlib.sha256(f"{CACHE_FORMAT}:{Path(gguf_path).name}:{stat.st_size}".encode()).hexdigest()[:16]
    return var_dir() / "tokenizer" / f"tokenizer-{key}.json"


class ChatTokenizer:
    """Encode and decode text for SmolLM2; `token_bytes[i]` is the exact bytes token i stands for."""

    def __init__(self, tokenizer: Tokenizer, bos_id: int, eos_id: int) -> None:
        self.backend = tokenizer
        # Control tokens written in the text are encoded as the characters they are made of ('<', '|', 'im', ...),
        # as transformers does with split_special_tokens=True.
        self.backend.encode_special_tokens = True
        self.bos_id = bos_id
        self.eos_id = eos_id
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1
        byte_of = {char: byte for byte, char in _bytes_to_unicode().items()}
        self.special_ids = {index for index, token in tokenizer.get_added_tokens_decoder().items() if token.special}
        self.token_bytes: list[bytes] = [b""] * self.vocab_size
        for token, index in vocab.items():
            if index in self.special_ids:
                continue  # control tokens never appear in a reply's text
            self.token_bytes[index] = bytes(byte_of[char] for char in token)

    @classmethod
    def from_gguf(cls, gguf_path: str, gguf_file: GGUFFile | None = None) -> ChatTokenizer:
        """Load from the cached `tokenizer.json`, building (and caching) it from the GGUF on first use."""
        cache = _cache_path(gguf_path)
        if cache.exists():
            tokenizer = Tokenizer.from_file(str(cache))
        else:
            tokenizer = _build_from_gguf(gguf_file or GGUFFile(gguf_path))
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            tokenizer.save(str(partial))
            os.replace(partial, cache)  # atomic, so a concurrent worker never reads half a file
        # The metadata names the same ids (bos 1, eos 2); reading them back from the vocabulary spares
        # parsing the GGUF when the cache is warm.
        bos_id = tokenizer.token_to_id(BOS_TOKEN)
        eos_id = tokenizer.token_to_id(EOS_TOKEN)
        return cls(tokenizer, bos_id, eos_id)

    def encode(self, text: str) -> list[int]:
        """Token ids for `text` as plain text: `<|im_end|>` written in it is seven ordinary tokens, never the
        control token (only the chat template places those, by id)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        """Text for `ids`, special tokens left out."""
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> StreamDecoder:
        """A fresh incremental decoder for one reply."""
        return StreamDecoder(self.token_bytes)


class StreamDecoder:
    """Turns token ids into text deltas; bytes of a character cut across tokens wait for the rest."""

    def __init__(self, token_bytes: list[bytes]) -> None:
        self._token_bytes = token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text this token completes (possibly empty while a character is incomplete)."""
        return self._utf8.decode(self._token_bytes[token_id], final=False)

    def flush(self) -> str:
        """Whatever is pending at the end of the reply (a broken trailing character becomes U+FFFD)."""
        return self._utf8.decode(b"", final=True)
