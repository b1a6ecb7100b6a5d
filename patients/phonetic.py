"""A French phonetic key for names (homonym and duplicate search): DUPONT ~ DUPOND, PHILIPPE ~ FILIPE.

A small Soundex adapted to French spelling: common graphemes are rewritten first (PH→F, QU→K, CE/CI→S,
EAU/AU→O, AI/EI→E, silent H), then letters are grouped into sound classes and repeats collapsed.
"""

from __future__ import annotations

import re

from patients.ins import normalise_trait

_REWRITES = [
    (r"PH", "F"), (r"BV", "V"), (r"GU([EI])", r"G\1"), (r"QU", "K"), (r"Q", "K"), (r"C([EIY])", r"S\1"), (r"CH", "S"),
    (r"SCH", "S"), (r"G([EIY])", r"J\1"), (r"EAUX?$", "O"), (r"EAU", "O"), (r"AU", "O"), (r"[AE]I", "E"),
    (r"(?<=[AEIOUY])S(?=[AEIOUY])", "Z"), (r"W", "V"), (r"Y", "I"), (r"H", ""), (r"X$", ""), (r"[STDZ]$", ""),
]
_CLASSES = {**dict.fromkeys("BP", "1"), **dict.fromkeys("CKG", "2"), **dict.fromkeys("DT", "3"), "L": "4",
            **dict.fromkeys("MN", "5"), "R": "6", **dict.fromkeys("FV", "7"), **dict.fromkeys("SZJX", "8")}


def phonetic_key(name: str) -> str:
    word = re.sub(r"[^A-Z]", "", normalise_trait(name))
    if not word:
        return ""
    for pattern, repl in _REWRITES:
        word = re.sub(pattern, repl, word)
    if not word:
        return ""
    first, out, last = word[0], [], ""
    for ch in word[1:]:
        code = _CLASSES.get(ch, "")
        if code and code != last:
            out.append(code)
        last = code
    return (first + "".join(out))[:8]
