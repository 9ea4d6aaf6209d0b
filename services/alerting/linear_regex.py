"""Regex matchers in time linear in the text (docs/alerting.md#silences): Alertmanager matches with
Go's RE2, which never backtracks; Python's `re` backtracks, so `.*.*.*.*x` against a long label
value takes minutes. `LinearRegex` parses a pattern with `re`'s own parser, compiles the RE2-like
subset (literals, classes, `.`, alternation, groups, `* + ? {m,n}` greedy or lazy, `^ $ \\A \\Z`)
to a Thompson NFA and simulates it with one set of states per character (Pike's method, no
captures), caching the transitions like a lazy DFA. What it cannot match in linear time —
back-references, look-arounds, possessive or atomic groups, inline flags — is refused, as RE2
refuses it. Results equal `re.fullmatch(pattern, text) is not None` (a property test checks it)."""
from __future__ import annotations

import functools
import re
from re import _constants as C  # noqa: N812 - the parser's node names
from re import _parser as sre_parse

__all__ = ["LinearRegex", "compile_linear", "MAX_PROGRAM"]

MAX_PROGRAM = 4096  # NFA instructions once {m,n} is expanded: bounds the work per character
_CACHE_ENTRIES = 512  # cached transitions per pattern (a lazy DFA); cleared when full

# instructions: (CHAR, predicate) consumes one character; (SPLIT, a, b); (JMP, a); (ASSERT, kind); (MATCH,)
_CHAR, _SPLIT, _JMP, _ASSERT, _MATCH = range(5)
_CATEGORIES = {
    C.CATEGORY_DIGIT: str.isdecimal, C.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    C.CATEGORY_SPACE: str.isspace, C.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    C.CATEGORY_WORD: lambda c: c.isalnum() or c == "_", C.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}
_ANCHORS = {C.AT_BEGINNING: "start", C.AT_BEGINNING_STRING: "start", C.AT_END: "end", C.AT_END_STRING: "end_string"}
_UNSUPPORTED = {C.GROUPREF: "back-references", C.GROUPREF_EXISTS: "conditional groups", C.ASSERT: "look-arounds",
                C.ASSERT_NOT: "look-arounds", C.POSSESSIVE_REPEAT: "possessive quantifiers",
                C.ATOMIC_GROUP: "atomic groups"}


def _class_predicate(items) -> callable:
    negate = bool(items) and items[0][0] is C.NEGATE
    tests = []
    for op, arg in items[1:] if negate else items:
        if op is C.LITERAL:
            tests.append(lambda c, ch=chr(arg): c == ch)
        elif op is C.RANGE:
            tests.append(lambda c, lo=arg[0], hi=arg[1]: lo <= ord(c) <= hi)
        elif op is C.CATEGORY and arg in _CATEGORIES:
            tests.append(_CATEGORIES[arg])
        else:
            raise ValueError(f"the class item {op} is not supported")
    if negate:
        return lambda c: not any(t(c) for t in tests)
    return lambda c: any(t(c) for t in tests)


class _Compiler:
    def __init__(self):
        self.program: list[tuple] = []

    def emit(self, *instruction) -> int:
        if len(self.program) >= MAX_PROGRAM:
            raise ValueError(f"too complex (more than {MAX_PROGRAM} steps once repetitions are expanded)")
        self.program.append(instruction)
        return len(self.program) - 1

    def patch(self, at: int, *instruction) -> None:
        self.program[at] = instruction

    def sequence(self, nodes) -> None:
        for op, arg in nodes:
            self.node(op, arg)

    def node(self, op, arg) -> None:
        if op in _UNSUPPORTED:
            raise ValueError(f"{_UNSUPPORTED[op]} are not supported (nor by Alertmanager's RE2)")
        if op is C.LITERAL:
            self.emit(_CHAR, lambda c, ch=chr(arg): c == ch)
        elif op is C.NOT_LITERAL:
            self.emit(_CHAR, lambda c, ch=chr(arg): c != ch)
        elif op is C.ANY:
            self.emit(_CHAR, lambda c: c != "\n")
        elif op is C.IN:
            self.emit(_CHAR, _class_predicate(arg))
        elif op is C.AT:
            if arg not in _ANCHORS:
                raise ValueError("word boundaries (\\b, \\B) are not supported")
            self.emit(_ASSERT, _ANCHORS[arg])
        elif op is C.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise ValueError("inline flags such as (?i) are not supported (write [Aa] instead)")
            self.sequence(sub)
        elif op is C.BRANCH:
            self.branch(arg[1])
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):  # lazy or greedy: the same set of matches
            self.repeat(*arg)
        else:
            raise ValueError(f"{op} is not supported")

    def branch(self, alternatives) -> None:
        jumps = []
        for index, alternative in enumerate(alternatives):
            if index < len(alternatives) - 1:
                split = self.emit(_SPLIT, None, None)
                self.sequence(alternative)
                jumps.append(self.emit(_JMP, None))
                self.patch(split, _SPLIT, split + 1, len(self.program))
            else:
                self.sequence(alternative)
        for jump in jumps:
            self.patch(jump, _JMP, len(self.program))

    def repeat(self, low: int, high: int, sub) -> None:
        for _ in range(low):
            self.sequence(sub)
        if high == C.MAXREPEAT:
            split = self.emit(_SPLIT, None, None)
            self.sequence(sub)
            self.emit(_JMP, split)
            self.patch(split, _SPLIT, split + 1, len(self.program))
            return
        splits = []
        for _ in range(high - low):
            splits.append(self.emit(_SPLIT, None, None))
            self.sequence(sub)
        for split in splits:
            self.patch(split, _SPLIT, split + 1, len(self.program))


class LinearRegex:
    """A compiled pattern whose `fullmatch(text)` takes O(len(text) × program) steps at most.
    ValueError (naming the construct) for a pattern outside the supported subset or invalid."""

    def __init__(self, pattern: str):
        try:
            parsed = sre_parse.parse(pattern)
        except re.error as err:
            raise ValueError(f"invalid regex: {err}") from None
        if parsed.state.flags & ~(re.UNICODE | getattr(re, "NOFLAG", 0)):
            raise ValueError("inline flags such as (?i) are not supported (write [Aa] instead)")
        compiler = _Compiler()
        compiler.sequence(parsed)
        compiler.emit(_MATCH)
        self.pattern = pattern
        self.program = tuple(compiler.program)
        self._cache: dict[tuple, frozenset[int]] = {}

    def _closure(self, pcs, at_start: bool, at_end: bool, before_final_newline: bool) -> frozenset[int]:
        """The states reachable from `pcs` without consuming a character (SPLIT, JMP, anchors)."""
        seen: set[int] = set()
        stack = list(pcs)
        while stack:
            pc = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            instruction = self.program[pc]
            kind = instruction[0]
            if kind == _SPLIT:
                stack += (instruction[1], instruction[2])
            elif kind == _JMP:
                stack.append(instruction[1])
            elif kind == _ASSERT:
                anchor = instruction[1]
                if (anchor == "start" and at_start) or (anchor == "end_string" and at_end) or (
                        anchor == "end" and (at_end or before_final_newline)):
                    stack.append(pc + 1)
        return frozenset(pc for pc in seen if self.program[pc][0] in (_CHAR, _MATCH))

    def fullmatch(self, text: str) -> bool:
        """True when the whole of `text` matches (what `re.fullmatch` would say)."""
        n = len(text)
        states = self._closure((0,), True, n == 0, n == 1 and text == "\n")
        for i, ch in enumerate(text):
            if not states:
                return False
            position = i + 1
            key = (states, ch, position == n, position == n - 1 and text[-1] == "\n")
            following = self._cache.get(key)
            if following is None:
                moved = [pc + 1 for pc in states if self.program[pc][0] == _CHAR and self.program[pc][1](ch)]
                following = self._closure(moved, False, key[2], key[3])
                if len(self._cache) >= _CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = following
            states = following
        return any(self.program[pc][0] == _MATCH for pc in states)


@functools.lru_cache(maxsize=4096)
def compile_linear(pattern: str) -> LinearRegex:
    """LinearRegex(pattern), shared: stored silences are read back every round and every list."""
    return LinearRegex(pattern)
