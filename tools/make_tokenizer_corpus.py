#!/usr/bin/env python3
"""Writes the tokenizer exactness corpus and the invalid-UTF-8 replacement fixture.

The corpus is our own text (no third-party data): hand-written strings for each hard case
(scripts, emoji sequences, combining marks, whitespace runs, CRLF, numbers, code, strings that
contain special-token text, control characters, invalid-looking input) and seeded random mixes
of the same pools, so every run writes the same file. Needs only the Python standard library.

    python3 tools/make_tokenizer_corpus.py --out tests/fixtures/text/tokenizers

Writes corpus.jsonl ({"text": ...} per line, also valid input for `loraserve tokenize`) and
invalid_utf8.jsonl ({"hex": raw bytes, "replaced": Python's errors="replace" decoding}), the
replacement our encoder applies before tokenizing (HF's Python API cannot take invalid UTF-8).
"""
import argparse
import json
import os
import random

ENGLISH = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see it's what we'd've done; they're here, aren't they?",
    "I'M SURE YOU'LL SEE IT'S WHAT WE'D DONE; THEY'RE HERE.",
    "Don't stop believing. Hold on to that feeling!",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "  leading spaces and trailing spaces  ",
    "multiple     spaces     between     words",
    "Mr. O'Neil's cat—who's 3 years old—ate 2.5 cans (yes, really).",
    "e-mail: someone@example.com, web: https://example.org/path?q=1&r=two#frag",
    "Wait... what?! No way!!! Are you serious???",
    "\"Quoted text\" and 'single quotes' and `backticks`.",
    "The year 2024 had 366 days; 1,000,000 people; 3.14159 pi; -42 degrees; 1e-10 eps.",
    "Sentence one. Sentence two! Sentence three? Sentence four...",
    "ALL CAPS TEXT WITH NUMBERS 123 AND SYMBOLS #@!",
    "camelCaseIdentifier snake_case_identifier kebab-case-identifier PascalCase",
    "a",
    "I",
    "  ",
    " ",
    "",
    "\n",
    "\t",
    "Hello",
    " Hello",
    "Hello ",
    "hello world",
    " hello world",
    "Hello\nworld",
    "Hello\n\nworld",
    "Hello\r\nworld\r\n",
    "line one\nline two\n\n\nline five\n",
    "tab\tseparated\tvalues\t1\t2\t3",
    "\t\tindented with tabs",
    "trailing newline\n",
    "   \n   \n",
    "word\u00a0with\u00a0nbsp",
    "It's 5 o'clock somewhere's",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "don\u2019t \u201cquote\u201d \u2018single\u2019",
    "The end.",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "ab" * 150,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.",
]

MULTILINGUAL = [
    "你好，世界！今天天气很好。",
    "我爱自然语言处理和机器学习。",
    "日本語のテキストです。ひらがな、カタカナ、漢字を含みます。",
    "東京都渋谷区で会いましょう。",
    "한국어 문장입니다. 안녕하세요!",
    "대한민국의 수도는 서울입니다.",
    "Привет, мир! Как дела?",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Γειά σου Κόσμε! Ελληνικά γράμματα: αβγδεζηθ.",
    "مرحبا بالعالم! هذه جملة عربية.",
    "اللغة العربية جميلة ١٢٣ ٤٥٦",
    "שלום עולם! זה משפט בעברית.",
    "नमस्ते दुनिया! यह हिंदी वाक्य है।",
    "সবাইকে শুভেচ্ছা, এটি বাংলা।",
    "வணக்கம் உலகம்! இது தமிழ்.",
    "สวัสดีชาวโลก นี่คือภาษาไทย",
    "Xin chào thế giới! Tiếng Việt có nhiều dấu: ắ ằ ẳ ẵ ặ.",
    "Türkçe: İstanbul, ığdır, Işık, şeker, çay, ğ.",
    "Deutsch: Straße, Größe, Übermaß, ÄÖÜ äöü ß ẞ.",
    "Français : « œuvre », çà et là, où, naïve, Noël.",
    "Español: ¿Dónde está la biblioteca? ¡Olé! niño, año.",
    "Português: ação, coração, pão, avó.",
    "Polski: zażółć gęślą jaźń.",
    "Čeština: příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Íslenska: Þetta er ð og þ.",
    "Հայերեն: Բարեւ աշխարհ",
    "ქართული: გამარჯობა მსოფლიო",
    "አማርኛ: ሰላም ዓለም",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ᐃᓄᒃᑎᑐᑦ",
    "ꦧꦱꦗꦮ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕸𝖆𝖙𝖍 𝒜𝒷𝒸 𝟘𝟙𝟚",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ！？",
    "ｶﾀｶﾅ ﾊﾝｶｸ",
    "Mixed: Hello 世界 Привет مرحبا 🌍!",
    "中文English混合text测试123",
    "ﬁ ﬂ ﬀ ﬃ ligatures",
    "Ⅻ ⅻ ① ② ③ ⑴ ⒜ ㊿",
    "½ ¼ ¾ ⅓ ⅞ x² y³ H₂O",
    "™ © ® ℃ ℉ № ℡",
    "µ Å Ω K ſ",
]

EMOJI = [
    "😀😃😄😁😆😅😂🤣",
    "I love 🍕 and 🍣!",
    "👨‍👩‍👧‍👦 family",
    "👩‍💻 👨‍🔬 🧑‍🚀",
    "🏳️‍🌈 🏳️‍⚧️ 🏴‍☠️",
    "🇯🇵 🇺🇸 🇫🇷 🇩🇪 🇧🇷 🇮🇳",
    "🇯🇵🇺🇸🇫🇷",
    "👍🏻 👍🏼 👍🏽 👍🏾 👍🏿",
    "1️⃣ 2️⃣ #️⃣ *️⃣",
    "🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿",
    "❤️ ❤ ♥️ ☺️ ☺",
    "🫠🫡🫶🪿🫎",
    "😀\u200d😀",
    "text🙂text🙂🙂",
    "🔥" * 20,
    "⭐️🌟✨💫",
]

COMBINING = [
    "e\u0301 vs \u00e9",
    "cafe\u0301 caf\u00e9",
    "A\u030a \u00c5 \u212b",
    "n\u0303 \u00f1",
    "Z\u0335\u0321\u031b\u0324a\u0337\u0329l\u0338g\u0334o\u0336\u031f",
    "\u0301leading combining mark",
    "a\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308",
    "\u1100\u1161\u11a8 (conjoining jamo) \uac01",
    "\u0915\u094d\u0937",
    "ﾊﾞ ﾊﾟ",
    "\u0041\u030a\u0301",
    "o\u0308\u0304",
]

WHITESPACE = [
    "a\u0085b",
    "a\u00a0b",
    "a\u1680b",
    "a\u180eb",
    "a\u2000b\u2001c\u2002d\u2003e\u2004f\u2005g\u2006h\u2007i\u2008j\u2009k\u200al",
    "a\u200bb",
    "a\u2028b\u2029c",
    "a\u202fb\u205fc\u3000d",
    "a\ufeffb",
    "\u3000\u3000全角スペース",
    "a\x0bb\x0cc",
    "a\x1cb\x1dc\x1ed\x1ff",
    " \t \n \r\n \u00a0 \u3000 ",
    "\r\n\r\n\r\n",
    "\r\r\n\n",
    "x\r\ny\rz\n",
    "    four spaces",
    "        eight spaces",
    "end with spaces    ",
    "\n\n\n\n\n\n\n\n",
    "\t\t\t\t",
    " \n",
    "\n ",
    "a \n b",
    "a  \n\n  b",
    "    def f():\n        return 1\n",
]

NUMBERS = [
    "0",
    "1234567890",
    "12345678901234567890123456789",
    "3.14159265358979",
    "1,000,000.00",
    "-17 +23 ±5",
    "1e10 2E-5 0x1F 0b1010 0o777",
    "2024-01-15T12:34:56Z",
    "$1,234.56 €99 £7 ¥1000 ₹500",
    "phone: +1 (555) 123-4567",
    "٠١٢٣٤٥٦٧٨٩ (Arabic-Indic)",
    "०१२३४५६७८९ (Devanagari)",
    "１２３４５ (fullwidth)",
    "𝟏𝟐𝟑 (math bold)",
    "v1.2.3-beta.4+build.5",
    "192.168.0.1:8080",
    "1/2 3/4 5:6 7;8",
    "100% 50‰ 3‱",
]

CODE = [
    "def hello(name: str) -> str:\n    return f\"Hello, {name}!\"\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; return v.size(); }",
    "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "SELECT name, COUNT(*) FROM users WHERE age > 18 GROUP BY name;",
    "const f = (x) => x ** 2; // arrow function",
    "if x != y && z >= 3 || !w { panic!(\"oops\"); }",
    "regex: ^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\\.[a-zA-Z0-9-.]+$",
    "path\\to\\file.txt C:\\Windows\\System32",
    "$ ls -la | grep '\\.py$' > out.txt 2>&1",
    "x = [i**2 for i in range(10) if i % 2 == 0]",
    "/* multi\n   line\n   comment */",
    "    indented\n\tmixed\n  \t  tabs",
    "a==b!=c<=d>=e->f=>g::h",
    "```python\nprint('hi')\n```",
    "<think>\nreasoning\n</think>",
    "---\ntitle: YAML\nlist:\n  - one\n  - two\n",
    "\\begin{equation} E = mc^2 \\end{equation}",
    "@decorator\nclass Foo(Bar):\n    pass",
]

SPECIAL = [
    "<s>", "</s>", "<unk>", "<pad>", "<mask>", "[PAD]", "<bos>", "<eos>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "[INST]", "[/INST]", "[TOOL_CALLS]",
    "<start_of_turn>", "<end_of_turn>", "<repo_name>", "<filename>", "<|reserved_special_token_5|>",
    "<|bos|>", "<|eos|>", "<tool_call>", "[MASK]", "[CLS]", "[SEP]", "<0x41>", "<2mass>",
]

SPECIAL_IN_TEXT = [
    "<s>Hello world</s>",
    "Hello<s>world",
    "Hello <s> world",
    " <s>",
    "<s> ",
    "<s><s></s></s>",
    "<s>[INST] What is 2+2? [/INST] 4</s>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "<bos><start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "partial <|im_start tag and <s incomplete </s",
    "<<s>> <</s>> <|<|im_end|>|>",
    "<S> </S> <IM_START>",
    "Use [MASK] here and [MASK]there and x[MASK]y.",
    "call <tool_call>  {\"name\": \"f\"}  <tool_call>",
    "  <tool_call>  ",
    "a<tool_call>b",
    "[PAD][PAD] padded",
    "<unk> unknown <unk>",
    "<mask> masked",
    "<0x41><0x42> not bytes",
    "[CLS] first [SEP] second [SEP]",
    "New York is big. new york is bigger. NEW YORK!",
    "I live in New York and New Yorkers love it.",
    "hello world, hello world!",
    "Hello World hello worldly",
    "<|bos|>start<|eos|>",
]

CONTROL = [
    "null\x00byte",
    "\x00",
    "\x00\x00\x00",
    "bell\x07 backspace\x08 escape\x1b[31mred\x1b[0m",
    "delete\x7f char",
    "\x01\x02\x03\x04\x05\x06",
    "C1: \x80\x81\x9f",
    "zero\u200bwidth\u200cnon\u200djoiner",
    "rtl \u200fmark\u200e and \u202aembedding\u202c",
    "\u2066isolate\u2069",
    "soft\u00adhyphen",
    "word\u2060joiner",
    "variation\ufe0f selector\ufe0e",
    "\ufeffBOM at start",
]

INVALID_LOOKING = [
    "\ufffd replacement char \ufffd\ufffd",
    "\\xff\\xfe escaped bytes",
    "\\u0000 \\n \\t literal escapes",
    "%C3%A9 %FF url-encoded",
    "&#233; &eacute; &#x1F600; entities",
    "\uffff\ufffe noncharacters",
    "\U0010ffff \U000f0000 \ue000 private use",
    "\U0001d11e musical symbol",
    "\u0378\u0379 unassigned",
    "Ã©tÃ© mojibake â€™",
    "ÿþ BOM-like",
    "\U00010000\U00020000\U0002a6d6",
    "𠀀𠀁𠀂 CJK Ext B",
    "\u0000\uffff\U0010ffff",
]

POOLS = {
    "ascii": list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    "punct": list(".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`"),
    "space": [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\n\n"],
    "cjk": list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"),
    "kana": list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー"),
    "hangul": list("가나다라마바사아자차카타파하한국어안녕세계서울대학교"),
    "cyrillic": list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"),
    "greek": list("αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώ"),
    "arabic": list("ابتثجحخدذرزسشصضطظعغفقكلمنهويءآأؤإئةى٠١٢٣٤٥٦٧٨٩"),
    "hebrew": list("אבגדהוזחטיכלמנסעפצקרשתךםןףץ"),
    "devanagari": list("अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौंः"),
    "thai": list("กขคงจฉชซญดตถทนบปผพฟภมยรลวศษสหอฮะาำิีึืุู่้๊๋"),
    "latin_ext": list("àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿĀāĂăĄąĆćČčĎďĐđĒēĘęĚěĞğĠġĦħĪīİıĲĳĶķĹĺĽľŁłŃńŇňŌōŐőŒœŔŕŘřŚśŞşŠšŢţŤťŪūŮůŰűŲųŴŵŶŷŸŹźŻżŽžſǅǆǈǉǋǌẞ"),
    "combining": ["\u0300", "\u0301", "\u0302", "\u0303", "\u0308", "\u030a", "\u0327", "\u0323", "\u0331", "\u20dd"],
    "emoji": ["😀", "🙂", "🤖", "🎉", "🚀", "❤️", "👍🏽", "👨‍👩‍👧", "🇯🇵", "🇨🇦", "🏳️‍🌈", "✅", "🔥", "💯", "🥲", "🫠", "🧑‍💻", "☕", "⚡", "🐍"],
    "symbols": list("←↑→↓↔∀∂∃∅∇∈∉∋∏∑−∗√∝∞∠∧∨∩∪∫≈≠≡≤≥⊂⊃⊆⊇⊕⊗⋅€£¥§¶°±×÷¿¡«»…‰′″‹›‼⁂"),
    "digits": list("0123456789٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３４５６７８９①②③⑴"),
    "control": ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x85", "\u200b", "\u200d", "\ufeff", "\u2028"],
}

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one "
         "had by word but not what all were we when your can said there use an each which she do how their "
         "if will up other about out many then them these so some her would make like him into time has look "
         "two more write go see number no way could people my than first water been call who oil its now find "
         "long down day did get come made may part over new sound take only little work know place year live me "
         "back give most very after thing our just name good sentence man think say great where help through "
         "much before line right too mean old any same tell boy follow came want show also around form three "
         "small set put end does another well large must big even such because turn here why ask went men read "
         "need land different home us move try kind hand picture again change off play spell air away animal house "
         "point page letter mother answer found study still learn should America world").split()


def random_text(rng):
    """One random mix: words, script runs, emoji, digits, whitespace and controls."""
    kinds = list(POOLS) + ["words"] * 6
    parts = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.choice(kinds)
        if kind == "words":
            ws = [rng.choice(WORDS) for _ in range(rng.randint(1, 8))]
            if rng.random() < 0.3:
                ws[0] = ws[0].capitalize()
            parts.append(" ".join(ws))
        elif kind in ("space", "control", "emoji", "combining"):
            parts.append("".join(rng.choice(POOLS[kind]) for _ in range(rng.randint(1, 3))))
        else:
            parts.append("".join(rng.choice(POOLS[kind]) for _ in range(rng.randint(1, 10))))
        if rng.random() < 0.6:
            parts.append(rng.choice([" ", " ", "", ", ", ". ", "\n", "  ", "'s ", "-", "\t"]))
    if rng.random() < 0.15:
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(SPECIAL))
    return "".join(parts)


def build_corpus():
    fixed = (ENGLISH + MULTILINGUAL + EMOJI + COMBINING + WHITESPACE + NUMBERS + CODE + SPECIAL +
             SPECIAL_IN_TEXT + CONTROL + INVALID_LOOKING)
    rng = random.Random(20261121)
    randoms = [random_text(rng) for _ in range(380)]
    # A few long inputs: paragraphs, a long whitespace run, a long single "word".
    long_ones = [
        " ".join(rng.choice(WORDS) for _ in range(400)) + ".",
        "".join(rng.choice(POOLS["cjk"]) for _ in range(600)),
        " " * 300 + "x" + "\n" * 100,
        "".join(rng.choice(POOLS["ascii"]) for _ in range(1500)),
        "\n\n".join(random_text(rng) for _ in range(20)),
    ]
    corpus = fixed + randoms + long_ones
    seen = set()
    unique = []
    for s in corpus:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


# Raw byte strings with invalid UTF-8: truncated sequences, stray continuation bytes, overlongs,
# surrogates encoded in UTF-8, code points above U+10FFFF, 0xFE/0xFF.
INVALID_BYTES = [
    b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
    b"\xf0\x9f\x98x", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80\x80\x80", b"\xbf",
    b"a\xe3\x81b\xe3\x81\x82c", b"\xe0\xa0", b"\xf0\x90\x80", b"\xf1\x80\x80", b"\xc2\xa9\xff\xc2\xa9",
    b"Hello \xf0\x9f\x98\x80 \xf0\x9f\x98 world", b"\xe4\xbd\xa0\xe5\xa5", b"<s>\xff</s>",
    b"\x00\xff\x00", b"\xef\xbb\xbf\xff", b"\xce\xb1\xce", b"\xdf", b"\xe1\x80\x41",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tests/fixtures/text/tokenizers")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    corpus = build_corpus()
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps({"text": s}, ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "invalid_utf8.jsonl"), "w", encoding="utf-8") as f:
        for b in INVALID_BYTES:
            f.write(json.dumps({"hex": b.hex(), "replaced": b.decode("utf-8", "replace")},
                               ensure_ascii=False) + "\n")
    print(f"wrote {len(corpus)} corpus strings and {len(INVALID_BYTES)} invalid-UTF-8 cases to {args.out}")


if __name__ == "__main__":
    main()
