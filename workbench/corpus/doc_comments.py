"""From a doc comment of Go, Java, Ruby, PHP, JavaScript or TypeScript to a search query, for the
cross-language out-of-distribution sets (:mod:`workbench.corpus.crosslang` finds the functions and
their comments). Pure text functions.

The query is the comment's description, cleaned: block tags (``@param``, ``@return``, ...) cut;
inline tags resolved (``{@code x}`` -> ``x``, ``{@link A#b}`` -> ``b``, ``{@link A#b text}`` ->
``text``); HTML tags stripped and entities decoded (``<code>``, ``&lt;``); Markdown links and images
reduced to their text; RDoc ``+code+``, ``*bold*``, ``{text}[url]`` and a leading ``call-seq:``
block removed; then the first paragraph (a blank line or an HTML block tag such as ``<p>`` ends
it), whitespace collapsed. JSDoc with tags only (date-fns) uses ``@summary``, else
``@description``. **Go**: doc comments start with the function's name ("Compare returns an
integer ..."), which gives the answer away; the leading name is dropped and the next word
capitalised ("Returns an integer ..."); see :func:`mask_leading_name`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from .mining import is_boilerplate_query

_HTML_TAGS = (
    "a|abbr|b|big|blockquote|br|caption|center|cite|code|dd|del|details|dfn|div|dl|dt|em|font|h[1-6]|hr|i|img|"
    "ins|kbd|li|ol|p|pre|q|s|samp|section|small|span|strike|strong|sub|summary|sup|table|tbody|td|tfoot|th|"
    "thead|tr|tt|u|ul|var|nav|header|footer|figure|figcaption|mark|time"
)
_HTML_TAG_RE = re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_HTML_BLOCK_RE = re.compile(
    r"</?(?:p|pre|ul|ol|dl|table|h[1-6]|blockquote|hr|div|section)(?:\s[^<>]*)?/?>", re.IGNORECASE
)
_BLOCK_TAG_LINE = re.compile(r"^\s*@[A-Za-z]")
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)")
_GO_DOC_LINK = re.compile(r"(?<![\w\]])\[(\*?[A-Za-z_][\w.]*)\](?![(\[:])")
_BACKTICK = re.compile(r"`([^`\n]+)`")
GO_DIRECTIVE = re.compile(r"^//(go:|line |export |extern |nolint|lint:|\+build|#)")
_RUBY_DIRECTIVE = re.compile(
    r"^\s*(rubocop:|:nodoc:|:stopdoc:|:startdoc:|:enddoc:|frozen_string_literal:|-\*-|typed:|"
    r"(en)?coding[:=]|warn_indent:|shareable_constant_value:|\*\*\s*:nodoc)", re.IGNORECASE
)


_RDOC_DIRECTIVE = re.compile(r"^\s*:[\w-]+:")  # :method: freeze, :section: Name, :yields: x


def _find_brace_end(text: str, start: int) -> int:
    """Index just past the ``}`` matching the ``{`` at ``start`` (or len(text))."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _link_label(body: str) -> str:
    """``A#b`` -> ``b``; ``A#b(int) text`` -> ``text``; ``url|text`` -> ``text`` (JSDoc)."""
    body = body.strip()
    if "|" in body and not body.startswith("|"):
        return body.split("|", 1)[1].strip()
    m = re.match(r"^(\S+?(?:\([^)]*\))?)(?:\s+(.+))?$", body, re.DOTALL)
    if not m:
        return body
    ref, label = m.group(1), m.group(2)
    if label:
        return label.strip()
    ref = re.sub(r"\(.*\)$", "", ref)
    if "#" in ref:
        ref = ref.rsplit("#", 1)[1] or ref
    elif "://" not in ref and "." in ref and not ref.endswith("."):
        ref = ref.rsplit(".", 1)[1] if ref[:1].islower() and ref.count(".") > 1 else ref
    return ref


def resolve_inline_tags(text: str) -> str:
    """Javadoc / JSDoc / PHPDoc inline tags: ``{@code x}`` -> ``x`` (kept literally, HTML-escaped
    so a later tag strip leaves ``List<T>`` alone), ``{@link A#b}`` -> ``b``, ``{@link A#b text}``
    -> ``text``, ``{@inheritDoc}`` -> ``@inheritDoc``, other ``{@tag x}`` -> ``x``."""
    out: list[str] = []
    i = 0
    while True:
        j = text.find("{@", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        end = _find_brace_end(text, j)
        inner = text[j + 2 : end - 1] if text[end - 1 : end] == "}" else text[j + 2 : end]
        m = re.match(r"([A-Za-z]+)\s*(.*)$", inner, re.DOTALL)
        tag, body = (m.group(1).lower(), m.group(2)) if m else ("", inner)
        if tag in ("code", "literal", "value", "systemproperty"):
            out.append(html.escape(body.strip(), quote=False))
        elif tag in ("link", "linkplain", "linkcode", "see", "tutorial"):
            out.append(_link_label(body))
        elif tag in ("inheritdoc", "inheritdocs"):
            out.append("@inheritDoc")
        elif tag in ("return", "returns"):  # Java 16: {@return x} reads "Returns x."
            inner_text = resolve_inline_tags(body.strip())
            out.append(f"Returns {inner_text}" + ("" if inner_text.endswith(".") else "."))
        elif tag == "index":
            q = re.match(r'^"([^"]*)"|^(\S+)', body.strip())
            out.append((q.group(1) or q.group(2)) if q else body)
        else:  # {@summary x}, {@docRoot}, unknown tags: their text
            out.append(resolve_inline_tags(body.strip()))
        i = end
    return "".join(out)


def strip_html(text: str) -> str:
    """Known HTML tags removed (``List<T>`` kept), entities decoded (``&lt;`` -> ``<``)."""
    return html.unescape(_HTML_TAG_RE.sub("", text))


def _first_paragraph(text: str, html_blocks: bool) -> str:
    """The first non-empty paragraph: blank lines (and HTML block tags when asked) end one."""
    if html_blocks:
        text = _HTML_BLOCK_RE.sub("\n\n", text)
    for para in re.split(r"\n[ \t]*\n", text.strip()):
        if para.strip():
            return para
    return ""


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _protect_backticks(text: str) -> str:
    return _BACKTICK.sub(lambda m: "`" + html.escape(m.group(1), quote=False) + "`", text)


def block_comment_lines(comment: str) -> list[str]:
    """The lines of a ``/** ... */`` (or ``/* ... */``) comment without the markers and the
    leading ``*`` of each line (one space after it removed too)."""
    body = comment
    if body.startswith("/**"):
        body = body[3:]
    elif body.startswith("/*"):
        body = body[2:]
    body = body.removesuffix("*/")
    lines = []
    for ln in body.split("\n"):
        s = ln.strip()
        if s.startswith("*"):
            s = s[1:]
            s = s[1:] if s.startswith(" ") else s
        lines.append(s.rstrip())
    return lines


def doc_block_query(comment: str, markdown: bool = True) -> str:
    """The query of a ``/** ... */`` comment (Javadoc, PHPDoc, JSDoc); "" when it has no description.

    The description is the text before the first block tag (a line starting with ``@``); when it
    is empty, JSDoc's ``@summary`` or ``@description`` text is used, and a lone ``@inheritDoc``
    gives the query "@inheritDoc" (dropped later as boiler-plate)."""
    desc: list[str] = []
    tags: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_tags = False
    for ln in block_comment_lines(comment):
        tm = re.match(r"^\s*@(\w+)\b\s*(.*)$", ln)
        if tm:
            in_tags = True
            name = tm.group(1).lower()
            current = None
            if name in ("summary", "description") and name not in tags:
                current = tags[name] = [tm.group(2)]
            elif name == "inheritdoc":
                tags.setdefault(name, [])
            continue
        if not in_tags:
            desc.append(ln)
        elif current is not None:
            current.append(ln)
    text = "\n".join(desc)
    if not text.strip():
        text = "\n".join(tags.get("summary") or tags.get("description") or [])
        if not text.strip() and "inheritdoc" in tags:
            text = "@inheritDoc"
    text = resolve_inline_tags(text)
    if markdown:
        text = _MD_LINK.sub(r"\1", _MD_IMAGE.sub("", text))
    text = _protect_backticks(text)
    return _collapse(strip_html(_first_paragraph(text, html_blocks=True)))


def go_doc_query(comments: Sequence[str]) -> str:
    """The first paragraph of a Go doc comment (``//`` lines or one ``/* */``), directives and
    ``[Name]`` doc-link brackets removed."""
    lines: list[str] = []
    for c in comments:
        if c.startswith("/*"):
            lines += block_comment_lines(c)
        elif GO_DIRECTIVE.match(c):
            continue
        else:
            s = c[2:]
            lines.append(s[1:] if s.startswith(" ") else s)
    para = _first_paragraph("\n".join(lines), html_blocks=False)
    return _collapse(_GO_DOC_LINK.sub(r"\1", para))


def ruby_doc_query(comments: Sequence[str]) -> str:
    """The query of a Ruby comment block: a leading ``call-seq:`` block and YARD ``@tags`` removed,
    RDoc markup (``+code+``, ``*bold*``, ``_em_``, ``{text}[url]``, ``<tt>``) reduced to text."""
    lines: list[str] = []
    for c in comments:
        if c.startswith("=begin"):
            lines += [ln for ln in c.split("\n")[1:] if not ln.startswith("=end")]
            continue
        s = c.lstrip("#")  # "##" opens RDoc's documentation of meta-programmed methods
        lines.append(s[1:] if s.startswith(" ") else s)
    lines = [ln for ln in lines if not _RUBY_DIRECTIVE.match(ln)
             and not (_RDOC_DIRECTIVE.match(ln) and not re.match(r"^\s*:call-seq:", ln, re.IGNORECASE))]
    cut = next((i for i, ln in enumerate(lines) if _BLOCK_TAG_LINE.match(ln)), len(lines))
    lines = lines[:cut]
    # call-seq: the signature lines (indented or blank) that follow it are dropped
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and re.match(r"^:?call-seq:", lines[0].strip(), re.IGNORECASE):
        i = 1
        while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
            i += 1
        lines = lines[i:]
    text = _first_paragraph("\n".join(lines), html_blocks=True)
    # RDoc escapes (\_, \+, \*, \#, \String) hide a character from the markup rules below
    escaped = {ch: chr(0xE000 + i) for i, ch in enumerate("_+*#:<\\")}
    text = re.sub(r"\\([_+*#:<\\])", lambda m: escaped[m.group(1)], text)
    text = re.sub(r"\\(?=[A-Z])", "", text)
    text = re.sub(r"\{([^{}]+)\}\[[^\]]+\]", r"\1", text)
    text = re.sub(r"(?<![\w+])\+([^\s+]+)\+(?![\w+])", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^\s*]+)\*(?![\w*])", r"\1", text)
    text = re.sub(r"(?<![\w])_([^\s_]+)_(?![\w])", r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    for ch, mark in escaped.items():
        text = text.replace(mark, ch)
    return _collapse(strip_html(text))


def mask_leading_name(query: str, name: str) -> tuple[str, bool]:
    """Drop a leading function name (Go style, "Compare returns ..." -> "Returns ..."); also
    "The Compare function ...", and a name in backticks. Returns ``(query, masked)``."""
    if not name:
        return query, False
    pat = rf"^(?:(?:The|A|An)\s+)?`?\*?{re.escape(name)}(?:\(\))?`?(?:\s+(?:function|method))?(?=[\s,:;.]|$)[\s,:;]*"
    m = re.match(pat, query)
    if not m:
        return query, False
    rest = query[m.end() :]
    if not rest:
        return "", True
    return rest[:1].upper() + rest[1:], True


_EXTRA_BOILERPLATE = [
    re.compile(r"^@"),  # @inheritDoc, @internal, @deprecated, @private ...
    re.compile(r"^\{@inheritdoc", re.IGNORECASE),
    re.compile(r"^(todo|fixme|xxx|hack)\b", re.IGNORECASE),
    re.compile(r"^inherit(ed)?\s*doc", re.IGNORECASE),
    re.compile(r"^(copyright|licensed|license)\b", re.IGNORECASE),
    re.compile(r"^(this\s+(method|function)\s+is\s+)?(deprecated|obsolete)\b", re.IGNORECASE),
    re.compile(r"^(internal|private)\s+(use|api)\b", re.IGNORECASE),
    re.compile(r"^see\b|^@see\b", re.IGNORECASE),
    re.compile(r"^[A-Za-z_]\w*\s*(::=|=|:=)\s"),  # a grammar rule: "ExistsExpression ::= ..."
    re.compile(r"^:?call-seq:", re.IGNORECASE),
]


def is_foreign_boilerplate(query: str) -> bool:
    """:func:`workbench.corpus.mining.is_boilerplate_query` plus "@inheritDoc", "@internal",
    "TODO"/"FIXME", copyright lines, "Internal use ..."."""
    q = query.strip()
    return is_boilerplate_query(q) or any(p.search(q) for p in _EXTRA_BOILERPLATE)
