"""Texts that tokenizers get wrong: what every runtime's tokenisation is compared on, beside
the validation split (the e2e gate, the web checks, the tests)."""
from __future__ import annotations

HOSTILE_TEXTS: list[str] = [
    "",
    " ",
    "\t\n\r ",
    "A gripping, beautifully acted film.",
    "Überraschend gut: a small miracle of a movie.",
    "naïve café, crème brûlée, façade, jalapeño",
    "ÅNGSTRÖM ÆSIR ØRESUND",
    "Ελληνικά: ταινία με ύφος",
    "Русский фильм, очень хороший",
    "日本語のテキストです。ガギグゲゴ",
    "中文电影非常好看",
    "한국어 영화 정말 좋아요",
    "ภาษาไทยไม่มีช่องว่าง",
    "हिन्दी फ़िल्म अच्छी है",
    "العربية فيلم جميل",
    "עברית סרט טוב",
    "Tiếng Việt: phim hay quá",
    "emoji 😀 👍🏽 🇫🇷 👨‍👩‍👧 ❤️",
    "zero\u200bwidth\u200djoiner\u200cnon\ufeffbom",
    "soft\u00adhyphen and\u00a0nbsp and\u2028line\u2029para",
    "combining e\u0301 a\u0308 n\u0303",
    "ﬁne ligature ＦＵＬＬＷＩＤＴＨ ①②③",
    "control \x00 \x01 \x1f \x7f \x85 chars",
    "replacement \ufffd char",
    "[CLS] [SEP] [MASK] [PAD] [UNK] as literal text",
    "<html><b>bold</b> &amp; entities</html>",
    "https://example.com/path?q=1&x=%20y #hashtag @user",
    "3.14159 1,000,000 -42 1e10 $9.99 50%",
    "!!!???...,,,;;;:::---___***",
    "supercalifragilisticexpialidocious" * 4,
    "a" * 101,
    "word " * 300,
    "x" * 10_000,
    "\U0001d54f\U0001d552\U0001d55d math letters 𝔽𝕣𝕒𝕜",
    "tab\tseparated\tcolumns",
    "MiXeD CaSe ShOuTiNg",
    "don't won't it's o'clock",
]


def hostile_pairs() -> list[tuple[str, str]]:
    """Each hostile text as the first and as the second of a pair (empty second texts left out:
    a pair task refuses them)."""
    plain = "A man is playing a guitar."
    return [(t, plain) for t in HOSTILE_TEXTS] + [(plain, t) for t in HOSTILE_TEXTS if t.strip()]
