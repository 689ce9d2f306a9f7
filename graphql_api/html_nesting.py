"""How deep a body's elements will nest, measured before the sanitizer parses it (issue 20).

The HTML5 tree builder under nh3 (html5ever) scans its stack of open elements on most tags, as
the HTML standard writes it, and caps nothing: its time grows with tags times depth, and 100 KB of
`<ul><li>` takes seconds. `nesting_depth` is one linear pass that estimates the deepest stack
that parse reaches, so that a body nested deeper than any editor produces is refused before it
costs anything.

It follows the HTML tokenizer (comments, quoted attributes, raw-text elements) and the tree
builder's implied closings (`<li>` after `<li>`, a block after an open `<p>`...). Where it cannot
tell what the parser does, it errs high, never low: inside raw text (`<style>`, `<script>`...) a
start tag still counts, since the same element is not raw text inside `<svg>`, and nothing but
the element's own end tag closes; an end tag closes only within the standard's scope; formatting
elements (`<b>`, `<a>`...) closed implicitly stay counted, because the parser reopens them. It is
a cost gate, not a parser: what is stored is always what nh3 makes of the body.
"""

from __future__ import annotations

import re

VOID = frozenset(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param source "
    "track wbr".split()
)
NEVER_NESTED = frozenset({"html", "head", "body"})  # the parser merges these, it never nests them
# Elements whose text the tokenizer does not parse as markup (in the HTML namespace).
RAW_TEXT = frozenset(
    "script style xmp iframe noembed noframes noscript textarea title plaintext".split()
)
FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
# Where the standard's "has an element in scope" searches stop (with svg and math for safety).
SCOPE = frozenset(
    "applet caption html table td th marquee object template mi mo mn ms mtext annotation-xml "
    "foreignobject desc title svg math".split()
)
# "Special" elements: a generic end tag closes nothing past one of them.
SPECIAL = SCOPE | frozenset(
    "address area article aside base basefont bgsound blockquote body br button center col "
    "colgroup dd details dir div dl dt embed fieldset figcaption figure footer form frame "
    "frameset h1 h2 h3 h4 h5 h6 head header hgroup hr iframe img input keygen li link listing "
    "main menu meta nav noembed noframes noscript ol p param plaintext pre script search section "
    "select source style summary tbody textarea tfoot thead tr track ul wbr xmp".split()
)
HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# Start tags that close an open paragraph first ("close a p element" in the standard).
CLOSES_PARAGRAPH = HEADINGS | frozenset(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer form header hgroup hr listing main menu nav ol p pre search section summary "
    "ul".split()
)
_TABLE_PARTS = frozenset({"table", "tbody", "thead", "tfoot"})
# A start tag that closes an open sibling: (siblings it closes, where the search stops).
CLOSES_SIBLING: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "li": (frozenset({"li"}), SCOPE | {"ul", "ol", "menu"}),
    "dd": (frozenset({"dd", "dt"}), SCOPE | {"dl"}),
    "dt": (frozenset({"dd", "dt"}), SCOPE | {"dl"}),
    "td": (frozenset({"td", "th"}), _TABLE_PARTS | {"tr"}),
    "th": (frozenset({"td", "th"}), _TABLE_PARTS | {"tr"}),
    "tr": (frozenset({"tr"}), _TABLE_PARTS),
    **dict.fromkeys(
        ("tbody", "thead", "tfoot"), (frozenset({"tbody", "thead", "tfoot"}), frozenset({"table"}))
    ),
    "option": (frozenset({"option"}), SCOPE | {"select", "optgroup"}),
}
# End tags closing within the standard's scope; any other stops at the first special element.
END_TAG_SCOPE: dict[str, frozenset[str]] = {
    **dict.fromkeys(CLOSES_PARAGRAPH | {"dd", "dt", "applet", "marquee", "object"}, SCOPE),
    "li": SCOPE | {"ul", "ol"},
    "p": SCOPE | {"button"},
    **dict.fromkeys(
        "table tbody thead tfoot tr td th caption colgroup".split(), frozenset({"html", "table"})
    ),
}

# What follows `<` in the tokenizer's data state: a comment, a `<!` or `<?` declaration (a bogus
# comment up to `>`), an end tag, `</` not followed by a letter, a start tag; else it is text.
_MARKUP = re.compile(r"<(?:(!--)|([!?])|/([A-Za-z][^\t\n\f\r />]*+)|/|([A-Za-z][^\t\n\f\r />]*+))")
# A tag's attributes up to its `>`; possessive, so linear on any input. Quotes open a value only
# after `=`, as in the tokenizer; an unclosed quote runs to the end of the body.
_ATTRIBUTES = re.compile(
    r"(?:[\t\n\f\r /]++|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    r"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?:\"[^\"]*+\"?|'[^']*+'?|[^\t\n\f\r >]*+))?+)*+"
)
_COMMENT_END = re.compile(r"--!?>")


def _lower(name: str) -> str:
    return name.encode().lower().decode()  # the tokenizer lowers ASCII letters only


class _TooDeep(Exception):
    pass


class _Stack:
    """The estimated stack of open elements, and the deepest it has been."""

    def __init__(self, limit: int) -> None:
        self.names: list[str] = []
        self.deepest = 0
        self.limit = limit

    def push(self, name: str) -> None:
        self.names.append(name)
        if len(self.names) > self.deepest:
            self.deepest = len(self.names)
            if self.deepest > self.limit:
                raise _TooDeep  # every later step would scan a deeper stack: stop here

    def close(self, targets: frozenset[str], stops: frozenset[str]) -> None:
        """Close the nearest open element among `targets` unless one of `stops` comes first.
        Formatting elements above it stay counted (the parser reopens them)."""
        for index in range(len(self.names) - 1, -1, -1):
            name = self.names[index]
            if name in targets:
                kept = [n for n in self.names[index + 1 :] if n in FORMATTING]
                del self.names[index:]
                self.names.extend(kept)
                return
            if name in stops:
                return

    def close_formatting(self, name: str) -> None:
        """The adoption agency, from above: an open `name` with only formatting elements above
        it closes; one with a block above it is replaced by a copy, so the depth stays."""
        for index in range(len(self.names) - 1, -1, -1):
            if self.names[index] == name:
                if all(n in FORMATTING for n in self.names[index + 1 :]):
                    del self.names[index]
                return
            if self.names[index] in SCOPE:
                return

    def open(self, name: str) -> None:
        if name in VOID or name in NEVER_NESTED:
            return
        if name in CLOSES_PARAGRAPH:
            self.close(frozenset({"p"}), SCOPE | {"button"})
        if name in HEADINGS and self.names and self.names[-1] in HEADINGS:
            self.names.pop()
        if name in CLOSES_SIBLING:
            self.close(*CLOSES_SIBLING[name])
        if name == "a":
            self.close_formatting("a")  # a link inside a link closes the first
        self.push(name)

    def end(self, name: str) -> None:
        if name in FORMATTING:
            self.close_formatting(name)
        else:
            self.close(frozenset({name}), END_TAG_SCOPE.get(name, SPECIAL))


def nesting_depth(body: str, limit: int) -> int:
    """An estimate, never too low, of the deepest the HTML parser's stack of open elements gets
    while it parses `body`; once past `limit` it stops counting and answers `limit + 1`.

    Cheap on the bodies people write: one with a handful of tags cannot nest deeply (each start
    tag adds one element, and the parser at most two implied ones and the formatting elements
    it reopens), so it is not walked at all.
    """
    if 3 * body.count("<") + len(NEVER_NESTED) <= limit:
        return 0
    stack = _Stack(limit)
    try:
        _walk(stack, body)
    except _TooDeep:
        pass
    return stack.deepest


def _walk(stack: _Stack, body: str) -> None:
    position = 0
    while (found := _MARKUP.search(body, position)) is not None:
        comment, declaration, end_name, start_name = found.groups()
        position = found.end()
        if comment:
            if body.startswith((">", "->"), position):  # "<!-->" and "<!--->" end at once
                position = body.index(">", position) + 1
                continue
            end = _COMMENT_END.search(body, position)
            if end is None:
                break  # the rest of the body is a comment
            position = end.end()
            continue
        if declaration == "!" and body.startswith("[CDATA[", position):
            # Text up to "]]>" inside <svg>, a bogus comment up to ">" elsewhere: count both.
            end_index = body.find("]]>", position)
            position = len(body) if end_index < 0 else end_index + 3
            _count_start_tags(stack, body[found.end() : position])
            continue
        if declaration or (end_name is None and start_name is None):
            end_index = body.find(">", position)
            if end_index < 0:
                break  # the rest of the body is a bogus comment
            position = end_index + 1
            continue
        attributes = _ATTRIBUTES.match(body, position)
        position = attributes.end() if attributes else position
        if position >= len(body):
            break  # a tag never closed: the parser drops it with the rest of the body
        position += 1  # its ">"
        if end_name is not None:
            stack.end(_lower(end_name))
            continue
        name = _lower(start_name)
        stack.open(name)
        if name in RAW_TEXT:
            position = _skip_raw_text(stack, body, name, position)


def _skip_raw_text(stack: _Stack, body: str, name: str, start: int) -> int:
    """Past the raw text of `name` opened at `start`, counting the start tags in it; its end
    tag closes it."""
    closing = re.compile(rf"</{name}[\t\n\f\r />]", re.ASCII | re.IGNORECASE).search(body, start)
    end = len(body) if closing is None or name == "plaintext" else closing.start()
    if name == "script" and "<!--" in body[start:end]:
        end = len(body)  # escaped script text may run past its first "</script>"
    _count_start_tags(stack, body[start:end])
    if end < len(body):
        stack.close(frozenset({name}), SCOPE - {name})
    return end


def _count_start_tags(stack: _Stack, text: str) -> None:
    for found in _MARKUP.finditer(text):
        if found.group(4):
            stack.open(_lower(found.group(4)))
