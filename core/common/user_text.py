"""Show text a user typed (a model name, a path, an exception that quotes them) inside Markdown messages as TEXT.

Streamlit renders ``st.error`` / ``st.warning`` / ``st.info`` / ``st.markdown`` bodies as GitHub-flavoured Markdown,
so a model name like ``![x](http://host/x.png)`` would become an image the browser fetches. Two tools:

* :func:`code` puts the text in a CommonMark code span, whose content is never parsed as Markdown
  (https://spec.commonmark.org/0.31.2/#code-spans); the fence is one backtick longer than any run inside, so a
  name with backticks cannot close it early. Long text is shortened (a 5,000-character name is not echoed whole).
* :func:`clip` keeps the first characters of a text (a prompt over its limit, a short quote of a bad value);
  :func:`counted` writes a count with its noun agreed in number ("1 item", "8 items").
* :func:`escape_markdown` backslash-escapes Markdown's active characters, as CommonMark allows before any ASCII
  punctuation (https://spec.commonmark.org/0.31.2/#backslash-escapes), for text shown inline (e.g. an exception's
  message that quotes a config value).

Plain Python, no Streamlit.
"""
from __future__ import annotations

import re

MAX_SHOWN_CHARS = 120


def shorten(text: str, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """``text`` on one line, cut to ``max_chars`` with "…" and the full length when longer."""
    flat = " ".join(str(text).split())
    if len(flat) <= max_chars:
        return flat
    return f"{flat[: max_chars - 1]}… ({len(flat):,} characters)"


def clip(text, max_chars: int, ellipsis: str = "…") -> str:
    """The first ``max_chars`` characters of ``text``, followed by ``ellipsis`` when some were cut (``""`` to keep
    just the prefix); a text that fits comes back as it is."""
    if max_chars < 0:
        raise ValueError(f"max_chars must be 0 or more, got {max_chars}.")
    text = str(text)
    return text if len(text) <= max_chars else text[:max_chars] + ellipsis


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and its noun agreed in number: ``counted(1, "item")`` → "1 item", ``counted(8, "item")`` →
    "8 items"."""
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def code(text, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """``text`` as an inline code span (shortened), safe to embed in any Markdown message."""
    shown = shorten(str(text), max_chars)
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or not shown.strip() else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


# Characters that start Markdown (and Streamlit's :material/icon: / :color[text] directives, $math$, HTML, entities)
# anywhere in a line; "-", "+", "." and "=" only matter at the start of a line (lists, headings).
_INLINE = set("\\`*_{}[]()#!<>|~$:&")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])", re.MULTILINE)


def escape_markdown(text) -> str:
    """``text`` with Markdown's active characters backslash-escaped, so it renders literally, never as Markdown.

    Commas, quotes, hyphens and periods inside a line are left alone (they are inert there), which keeps messages
    readable in the source too."""
    escaped = "".join("\\" + c if c in _INLINE else c for c in str(text))
    return _LINE_START.sub(lambda m: m.group(1) + "".join("\\" + c if not c.isdigit() else c for c in m.group(2)),
                           escaped)
