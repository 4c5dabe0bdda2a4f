"""The shortcuts the NLU takes to scan a message find exactly what the plain versions find."""

from __future__ import annotations

import random
import re

from bot.nlu.entities import literal_trie

WORDS = ["电焊", "电焊工", "电工", "焊工", "挖机", "挖掘机", "挖掘机司机", "工", "a.b", "(x)", "工地", "地"]


def _plain(words, text):
    alternation = re.compile("|".join(map(re.escape, sorted(words, key=len, reverse=True))))
    return [(m.start(), m.group()) for m in alternation.finditer(text)]


def test_literal_trie_takes_the_longest_word_like_the_alternation():
    trie = re.compile(literal_trie(WORDS))
    rng = random.Random(7)
    alphabet = "".join(set("".join(WORDS))) + "我要学"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert [(m.start(), m.group()) for m in trie.finditer(text)] == _plain(WORDS, text), text
    assert re.compile(literal_trie([])).search("anything") is None

