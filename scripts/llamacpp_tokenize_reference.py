"""Reference tokenizations from llama.cpp for the GGUF tokenizer of `llm-local`.

Tokenizes a fixed corpus of varied text (prose, numbers, code, whitespace, punctuation, many
scripts and emoji, chat-template special tokens) with llama.cpp, for every model of MODELS that
`../shared/tools/fetch-gguf.sh` has fetched, and writes under crates/llm-local/tests/fixtures/tokenizer/:

* corpus.json: the corpus;
* NAME.json: for each model, the token ids of every corpus line with special-token parsing off
  and on (`Llama.tokenize(text, add_bos=False, special=False/True)`), BOS, add-BOS, the
  end-of-generation ids and FNV-1a digests of every token's piece (`llama_token_to_piece`,
  special=True), in blocks of 1024 ids;
* NAME.vocab.gguf, for the Apache-2.0 models only: the model's GGUF metadata without tensors
  (a vocab-only GGUF, as llama.cpp's own models/ggml-vocab-*.gguf), checked to tokenize the corpus
  exactly as the full file does;
* pre-tokenizers.json: the ids of every line (special=True) with Qwen2.5's vocabulary under the
  other pre-tokenizers of PRE_VARIANTS (`tokenizer.ggml.pre` rewritten), so that the pre-tokenizer
  regexes no shipped model uses are held against llama.cpp too.

    py=$(../shared/tools/llamacpp-env.sh | tail -1)
    for m in smollm2-135m qwen2.5-coder-1.5b gemma3-270m; do ../shared/tools/fetch-gguf.sh $m; done
    "$py" scripts/llamacpp_tokenize_reference.py

With `--unicode-table SRC/unicode-data.cpp` (llama.cpp's source, e.g. from the llama-cpp-python
sdist: `pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`), it instead writes
crates/llm-local/src/runtime/tokenizer/unicode_data.rs, the codepoint categories the
pre-tokenizers use, from llama.cpp's own table.
"""

import argparse
import ctypes
import hashlib
import json
import os
import pathlib
import re
import struct
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "crates/llm-local/tests/fixtures/tokenizer"
UNICODE_RS = ROOT / "crates/llm-local/src/runtime/tokenizer/unicode_data.rs"
GGUF_DIR = pathlib.Path(os.environ.get("GGUF_DIR", pathlib.Path.home() / ".cache/gguf"))
# name -> whether its vocabulary may be committed (Apache-2.0)
MODELS = {"smollm2-135m": True, "qwen2.5-coder-1.5b": True, "gemma3-270m": False}
PIECE_BLOCK = 1024
# pre-tokenizers checked on Qwen2.5's vocabulary (pre-tokenizers.json)
PRE_VARIANTS = ["default", "gpt-2", "llama-bpe", "dbrx", "deepseek-llm", "deepseek-coder", "falcon", "starcoder"]


def corpus():
    prose = [
        "Hello world",
        "Hello, world! How are you today?",
        "The quick brown fox jumps over the lazy dog.",
        "It was the best of times, it was the worst of times, it was the age of wisdom.",
        "Neural architecture search automates the design of neural networks.",
        "We train each candidate for one epoch and report the validation accuracy.",
        "In 2019, NAS-Bench-201 evaluated 15,625 cells on CIFAR-10, CIFAR-100 and ImageNet16-120.",
        "I'm sure you're right, but they've said it'll rain and we'd better go.",
        "DON'T SHOUT! I'M LISTENING. YOU'RE LOUD, AREN'T YOU? WE'VE HEARD. HE'LL STOP. SHE'D KNOW.",
        "Don'T mIx CaSe'S lIkE tHiS'Ll",
        "'s 't 're 've 'm 'll 'd at the start",
        "rock 'n' roll, 'quoted', \"double quoted\", `backticks`",
        "e.g. i.e. etc. Mr. Smith vs. Dr. Jones, Ph.D.",
        "A sentence ending with spaces   ",
        "   A sentence starting with spaces",
        "multiple   spaces    between     words",
        "UPPERCASE lowercase MixedCase camelCase snake_case kebab-case SCREAMING_SNAKE",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.",
        "The model's output was: \"42\". Was it correct? Yes! No... maybe?!",
        "one,two;three:four.five!six?seven",
        "hello\nworld",
        "first line\r\nsecond line\r\n",
        "tab\tseparated\tvalues\tin\ta\trow",
        "A paragraph.\n\nAnother paragraph after a blank line.\n\n\nAnd a third.",
        "Bullet list:\n- one\n- two\n  - nested\n* star\n1. numbered",
        "# Heading\n\n## Subheading\n\nSome **bold** and _italic_ text with a [link](https://example.com).",
        "> quoted text\n> continues here",
        "Email me at someone@example.org or visit https://www.example.com/path?q=1&r=two#frag.",
        "File paths: /usr/local/bin/python3, C:\\Users\\Admin\\Desktop\\file.txt, ~/.cache/gguf",
    ]
    numbers = [
        "0", "7", "42", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789",
        "1234567890", "12345678901234567890", "000", "0000", "007", "3.14159", "2.718281828459045",
        "-17", "+5", "1,000,000", "1.000.000,50", "1e-5", "6.02e23", "0x1F", "0b1010", "0o777",
        "1/2", "3:45 PM", "2024-11-24", "24/11/2024", "12:30:45.123", "v1.2.3", "version 0.11.1",
        "+1 (555) 123-4567", "abc123def456", "a1b2c3", "x86_64", "CIFAR10 vs CIFAR-100",
        "$19.99", "€5,00", "100%", "50 km/h", "3x3 conv", "1024x768", "2^10 = 1024",
        "the years 1999, 2000 and 2001", "pi is approximately 3.1415926535897932384626433",
        "١٢٣٤٥ (Arabic-Indic digits)", "१२३ (Devanagari digits)", "Ⅻ and ⅷ roman numerals",
        "½ ¾ ² ³ ⁴ ₁ ₂", "①②③", "𝟙𝟚𝟛 mathematical digits",
    ]
    code = [
        "def forward(self, x):\n    return self.net(x)",
        "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F",
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)\n",
        "nn.Sequential(nn.Conv2d(3, 32, kernel_size=3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2))",
        "nn.Sequential(\n    nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False),\n    nn.BatchNorm2d(64),\n    nn.ReLU(),\n    nn.AdaptiveAvgPool2d((1, 1)),\n    nn.Flatten(),\n    nn.Linear(64, 10),\n)",
        "nn.Sequential(nn.LazyConv2d(16, 3), nn.LazyBatchNorm2d(), nn.GELU(approximate='tanh'), nn.Dropout(p=0.1), nn.LazyLinear(10))",
        "model = nn.Sequential(nn.Flatten(), nn.Linear(28*28, 512), nn.ReLU(), nn.Linear(512, 10))",
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)",
        "for epoch in range(200):\n\tfor x, y in loader:\n\t\tloss = F.cross_entropy(model(x), y)\n\t\tloss.backward()",
        "if __name__ == \"__main__\":\n    main()",
        "x = [i ** 2 for i in range(10) if i % 2 == 0]",
        "print(f\"{name!r:>10} = {value:.3f}\")",
        "lambda x: x*2+1  # comment",
        "@dataclass\nclass Config:\n    lr: float = 1e-3\n    layers: list[int] = field(default_factory=list)",
        "fn main() {\n    println!(\"Hello, {}!\", name);\n}",
        "pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, LlmError> {",
        "impl<'a, T: Clone + Send> Iterator for Iter<'a, T> { type Item = &'a T; }",
        "let v: Vec<_> = xs.iter().map(|x| x * 2).filter(|&x| x > 3).collect();",
        "match self { Self::A(x) => x?, Self::B { y, .. } => return Err(e.into()) }",
        "#[derive(Debug, Clone, PartialEq)]\nstruct Point { x: f64, y: f64 }",
        "use std::collections::HashMap;\nuse candle_core::{Device, Tensor};",
        "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
        "for (int i = 0; i < n; ++i) { a[i] += b[i] * c; }",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
        "{\"name\": \"resnet8\", \"params\": 78042, \"flops\": 12.5e6, \"layers\": [1, 2, 3], \"ok\": true}",
        "<div class=\"container\"><p>Hello &amp; welcome</p></div>",
        "<table><tr><td>1</td><td>2</td></tr></table>",
        "<h1>Title</h1><strong>bold</strong><em>em</em><code>x</code>",
        "cargo test -p llm-local --test tokenizer -- --nocapture 2>&1 | tee log.txt",
        "git commit -m \"fix: handle edge cases\" && git push origin main",
        "$ echo $HOME; ls -la | grep '^d' > dirs.txt",
        "a == b && c != d || !e; x <= y >= z; p -> q => r; a::b::c; i++; j--;",
        "x += 1; y -= 2; z *= 3; w /= 4; m %= 5; n **= 6; k //= 7; s <<= 1; t >>= 2;",
        "/* block comment */ // line comment # hash comment -- sql comment",
        "\\begin{equation} E = mc^2 \\end{equation} and $\\frac{a}{b} + \\sqrt{x}$",
        "regex: ^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$",
        "[[1, 2], [3, 4]] {a: {b: {c: []}}} (((nested)))",
        "    indented with four spaces\n        and eight\n            and twelve",
        "\tone tab\n\t\ttwo tabs\n\t\t\tthree tabs",
        "trailing whitespace    \nnext line\t\t\n",
        "",
    ]
    whitespace = [" " * n for n in (1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 40, 64)]
    whitespace += ["\n" * n for n in (1, 2, 3, 4, 8, 31, 35)]
    whitespace += ["\t" * n for n in (1, 2, 3, 8, 40)]
    whitespace += [
        " \n", "\n ", " \n ", "\n \n", " \t\n\r", "\r", "\r\n", "\r\n\r\n", "\n\r", "\t \t",
        "word \n", "word\n ", "word  \n\n  word", "a \t b", "a\u00a0b", "a\u3000b", "a\u2009b",
        "a\u2028b", "a\u0085b", "a\u200bb", "\u00a0\u00a0leading nbsp", "x" + " " * 20 + "y",
        "x" + "\n" * 5 + "y", "end with newline\n", "  \n  \n  ", "\x0b\x0c form feed",
    ]
    punctuation = [
        "!!!", "???", "...", "?!", "!?", "…", "—", "–", "-", "--", "---", "___", "***", "~~~",
        "«guillemets»", "„German quotes“", "“curly” ‘quotes’", "(parentheses) [brackets] {braces} <angles>",
        "@#$%^&*()_+-=[]{}|;':\",./<>?`~", "¡Hola! ¿Qué tal?", "§ ¶ † ‡ • ° ± × ÷ ∞ ≠ ≤ ≥ ≈ √ ∑ ∏ ∫ ∂",
        "→ ← ↑ ↓ ⇒ ⇔ ∀ ∃ ∈ ∉ ∅ ∩ ∪ ⊂ ⊆", "© ® ™ ℃ ℉ Ω µ", "#hashtag @mention $cash %percent",
        "''''", "\"\"\"docstring\"\"\"", "::", ";;", "//", "\\\\", "=>", "<=>", "!==", "?.", "??",
    ]
    unicode = [
        "café naïve résumé façade Zürich Ångström São Paulo Łódź Dvořák",
        "cafe\u0301 (decomposed e + combining acute)",
        "Ελληνικά: Καλημέρα κόσμε",
        "Русский: Привет, мир! Как дела?",
        "Українська мова, Беларуская мова, Български език",
        "العربية: مرحبا بالعالم",
        "עברית: שלום עולם",
        "mixed RTL: hello שלום world مرحبا 123",
        "हिन्दी: नमस्ते दुनिया",
        "বাংলা: হ্যালো বিশ্ব",
        "தமிழ்: வணக்கம் உலகம்",
        "ไทย: สวัสดีชาวโลก",
        "Tiếng Việt: Xin chào thế giới",
        "中文：你好，世界！这是一个测试。",
        "简体中文和繁體中文",
        "日本語：こんにちは世界。カタカナとひらがな、漢字。",
        "한국어: 안녕하세요 세계",
        "ქართული: გამარჯობა", "Հայերեն: Բարեւ", "አማርኛ: ሰላም", "ᐃᓄᒃᑎᑐᑦ",
        "Emoji: 😀 😃 😄 😁 🤖 🚀 🔥 💯",
        "👍🏽 👩‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ ✨",
        "Flags: 🇺🇸 🇫🇷 🇯🇵 🇩🇪",
        "text😀text🤖text",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝓢𝓬𝓻𝓲𝓹𝓽 𝐁𝐨𝐥𝐝",
        "𝄞 musical symbol, 𐍈 gothic letter, 𓀀 hieroglyph",
        "Zero\u200dwidth\u200cjoiners\u2060and\ufeffBOM",
        "ﬁ ﬂ ligatures, ＦＵＬＬＷＩＤＴＨ ｆｕｌｌｗｉｄｔｈ ｈａｌｆ",
        "Ᲊ ᲊ Unicode 16 letters",
        "\u0120 and \u2581 and \u010a literal marker characters",
        "<0x41> <0xFF> literal byte-token text",
        "control \x01\x02\x1b[31mred\x1b[0m \x7f",
        "nul\x00byte",
        "Ǆ ǅ ǆ titlecase digraphs, İstanbul ı",
        "ß ẞ ſ straße",
        "a" * 200,
        "ab" * 150,
        "😀" * 20,
        "中" * 50,
        "\ue000\uf8ff private use",
    ]
    specials = [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWrite a CNN.<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nHello<|im_end|>",
        "<|im_start|><|im_end|>",
        "<|im_start|>assistant\nnn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())<|im_end|>\n",
        " <|im_end|> ",
        "<|im_start",
        "<|im_start|>|>",
        "<<|im_end|>>",
        "<|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "text<|endoftext|>more text",
        "<|fim_prefix|>def add(a, b):\n<|fim_suffix|>\n    return c<|fim_middle|>",
        "<|file_sep|>src/main.py\n<|repo_name|>nas-rs",
        "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"nas\"}}\n</tool_call>",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "[PAD151665] padding text",
        "<start_of_turn>user\nHello, who are you?<end_of_turn>\n<start_of_turn>model\n",
        "<bos><start_of_turn>user\nhi<end_of_turn>",
        "<start_of_turn>",
        "<end_of_turn>\n",
        "<eos>",
        "<pad><unk><mask>",
        "<unused0> <unused42>",
        "[multimodal]",
        "<start_of_image><end_of_image>",
        "<s>hello</s>",
        "<s> [INST] question [/INST]",
        "</s>",
        "<repo_name>nas-rs<file_sep>README.md<filename>x",
        "<jupyter_start><jupyter_code>print(1)<jupyter_output>1",
        "<|eot_id|><|start_header_id|>user<|end_header_id|>",
        "special<|im_start|>glued<|im_end|>tokens",
        "<|im_start|>user\n\n\n\n<|im_end|>",
        "<|im_start|>system\n   leading spaces<|im_end|>",
    ]
    mixed = [
        "ab12cd34 x²+y² 3rd 21st 10,000.5e-3 ٣abc ０１２ fullwidth digits ߀߁ NKo",
        "l’homme, it’s, don’t (curly apostrophes) and ''s and '' and 's'",
        "'S'T'RE'VE'M'LL'D",
        "\u00a0word \u3000word \u2003word  \u00a0 x",
        "\r\n\r\n  x", " \r\n", "\t\n\t", ".\n\n\n", "!!\r\n", "x\n\n\n\ny", "a\n\r\n\n b",
        "a\u0301\u0302\u0303 stacked accents",
        "Z\u0351\u036b\u0343\u036a\u0302 zalgo A\u0334\u0335\u031c\u0330",
        "ᄀ ᅡ ᆨ jamo, ｶﾀｶﾅ half-width katakana",
        "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
        "क्षत्रिय ज्ञान श्री",
        "ǅemal µ ﬃ ℌ",
        "1" * 50,
        " " * 100,
        "\n" * 100,
        "!" * 40,
        "-" * 80,
        "=" * 30,
        "\t\t  \t  \t\t\t   ",
        "☺️ 1️⃣ #️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿 ©️",
        "中文 mixed with English and 123 and 한국어 가나다",
        "trailing spaces after CJK 中文   ",
        "key: value\nlist:\n  - a\n  - b\nnested:\n    deep: true\n",
        "[package]\nname = \"nas-rs\"\nversion = \"0.1.0\"\n\n[dependencies]\nserde = { version = \"1\", features = [\"derive\"] }",
        "all:\n\tcargo build --release\n\n.PHONY: all",
        "<!-- HTML comment --> <br/> &nbsp; &lt;tag&gt;",
        "const f = async (x) => { await g(x?.y ?? 0); return `${x}`; };",
        "func main() {\n\tfmt.Println(\"hi\")\n}",
        "List<Map<String, Integer>> m = new ArrayList<>();",
        "cat <<'EOF'\nheredoc $HOME\nEOF",
        "torch.nn.Conv2d(in_channels=3, out_channels=64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))",
        "x = torch.randn(8, 3, 32, 32); y = model(x); assert y.shape == (8, 10)",
        "Epoch 1/200 - loss: 2.3026 - acc: 0.1000 - val_loss: 2.2950 - val_acc: 0.1123",
        "|-- resnet8 | 78,042 | 12.5M | 91.2% |\n|---|---:|:---:|---|",
        "<|im_end|><|im_end|>",
        "<|im_start|>\n<|im_start|>",
        "<start_of_turn>model\n<end_of_turn>",
        "<<start_of_turn>>",
        "<h1>Hi</h1>\n\n\n\n",
        "  <td>x</td>  ",
        "<tool_call></tool_call><tool_call>",
        "<|endoftext|>\n\n<|endoftext|>",
        "<s></s><s>",
        "<unk>",
        "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n你好！有什么可以帮你？<|im_end|>",
    ]
    lines = prose + numbers + code + whitespace + punctuation + unicode + specials + mixed
    long_line = " ".join(prose[:12] + numbers[:20] + code[3:6] + unicode[:10])
    lines.append(long_line)
    lines.append("\n".join(code[:10]))
    assert len(lines) == len(set(lines)), "duplicate corpus lines"
    return lines


def fnv1a(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def piece(llama_cpp, vocab, token):
    buf = ctypes.create_string_buffer(4096)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, True)
    assert 0 <= n <= len(buf), (token, n)
    return buf.raw[:n]


def tokenize_all(llm, lines):
    plain = [llm.tokenize(t.encode(), add_bos=False, special=False) for t in lines]
    special = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in lines]
    return plain, special


def ids_json(rows):
    return "[\n" + ",\n".join("    " + json.dumps(r) for r in rows) + "\n  ]"


def vocab_only_gguf(src, dst, pre=None):
    """Copies the header and metadata of a GGUF file, with no tensors (and `tokenizer.ggml.pre`
    replaced by `pre` when given)."""
    data = src.read_bytes()
    magic, version, _n_tensors, n_kv = struct.unpack_from("<IIQQ", data, 0)
    assert magic == 0x46554747 and version >= 2, "not a GGUF v2+ file"
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_value(pos, vtype):
        if vtype == 8:
            (n,) = struct.unpack_from("<Q", data, pos)
            return pos + 8 + n
        if vtype == 9:
            etype, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if etype in sizes:
                return pos + n * sizes[etype]
            for _ in range(n):
                pos = skip_value(pos, etype)
            return pos
        return pos + sizes[vtype]

    out = [struct.pack("<IIQQ", magic, version, 0, n_kv)]
    pos = 24
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", data, pos)
        key = data[pos + 8 : pos + 8 + klen]
        (vtype,) = struct.unpack_from("<I", data, pos + 8 + klen)
        end = skip_value(pos + 12 + klen, vtype)
        if pre is not None and key == b"tokenizer.ggml.pre":
            out.append(data[pos : pos + 12 + klen] + struct.pack("<Q", len(pre)) + pre.encode())
        else:
            out.append(data[pos:end])
        pos = end
    out = b"".join(out)
    dst.write_bytes(out + b"\0" * (-len(out) % 32))


def pre_tokenizer_variants(lines):
    """Qwen2.5's vocabulary under other `tokenizer.ggml.pre` values: the pre-tokenizers the three
    models do not use, held against llama.cpp."""
    import llama_cpp

    base = FIXTURES / "qwen2.5-coder-1.5b.vocab.gguf"
    variants = {}
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            path = pathlib.Path(tmp) / f"{pre}.gguf"
            vocab_only_gguf(base, path, pre)
            llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
            variants[pre] = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in lines]
    body = '{\n  "base": "' + base.name + '",\n  "llama_cpp_python": "' + llama_cpp.__version__ + '",\n  "special":'
    body += " {\n" + ",\n".join(f'  "{pre}": {ids_json(rows)}' for pre, rows in variants.items()) + "\n  }\n}\n"
    (FIXTURES / "pre-tokenizers.json").write_text(body)
    print(f"pre-tokenizers.json: {', '.join(variants)}")


def reference(name, lines, commit_vocab):
    import llama_cpp

    path = GGUF_DIR / f"{name}.gguf"
    if not path.exists():
        print(f"skip {name}: {path} is absent (../shared/tools/fetch-gguf.sh {name})")
        return
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    plain, special = tokenize_all(llm, lines)
    blocks = []
    for start in range(0, n_vocab, PIECE_BLOCK):
        h = 0xCBF29CE484222325
        for token in range(start, min(start + PIECE_BLOCK, n_vocab)):
            p = piece(llama_cpp, vocab, token)
            h = fnv1a(struct.pack("<I", len(p)) + p, h)
        blocks.append(f"{h:016x}")
    meta = llm.metadata
    bos = llama_cpp.llama_vocab_bos(vocab)
    header = {
        "model": name,
        "gguf": path.name,
        "gguf_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "llama_cpp_python": llama_cpp.__version__,
        "tokenizer_model": meta.get("tokenizer.ggml.model"),
        "tokenizer_pre": meta.get("tokenizer.ggml.pre"),
        "n_vocab": n_vocab,
        "bos": None if bos < 0 else bos,
        "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
        "eog": [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)],
        "piece_block": PIECE_BLOCK,
        "piece_fnv1a": blocks,
    }
    body = json.dumps(header, indent=2, ensure_ascii=False)[:-2]
    body += f',\n  "plain": {ids_json(plain)},\n  "special": {ids_json(special)}\n}}\n'
    (FIXTURES / f"{name}.json").write_text(body)
    print(f"{name}: {len(lines)} lines, {sum(map(len, plain))} + {sum(map(len, special))} tokens")

    if commit_vocab:
        dst = FIXTURES / f"{name}.vocab.gguf"
        vocab_only_gguf(path, dst)
        small = llama_cpp.Llama(str(dst), vocab_only=True, verbose=False)
        assert tokenize_all(small, lines) == (plain, special), f"{dst} tokenizes differently"
        print(f"{dst.name}: {dst.stat().st_size} bytes, same tokens as the full file")


def unicode_table(src):
    """Codepoint classes of llama.cpp's unicode-data.cpp as a Rust table."""
    text = pathlib.Path(src).read_text()
    start = text.index("unicode_ranges_flags")
    ranges = re.findall(r"\{0x([0-9A-F]+), 0x([0-9A-F]+)\}", text[start : text.index("};", start)])
    # flags (unicode.h) -> Class discriminant in unicode.rs: Other 0, Number 1, Letter 2,
    # Punctuation 3, Mark 4, Symbol 5 (separators, controls and unassigned codepoints are Other)
    classes = {0x02: 1, 0x04: 2, 0x20: 3, 0x10: 4, 0x40: 5}
    runs = []
    for cpt, flags in ((int(a, 16), int(b, 16)) for a, b in ranges):
        if cpt >= 0x110000:
            break
        cls = classes.get(flags & 0xFF, 0)
        if not runs or runs[-1][1] != cls:
            runs.append((cpt, cls))
    rows = [", ".join(f"0x{c << 3 | k:08X}" for c, k in runs[i : i + 8]) for i in range(0, len(runs), 8)]
    UNICODE_RS.write_text(
        "//! Generated by `scripts/llamacpp_tokenize_reference.py --unicode-table` from llama.cpp's\n"
        "//! `src/unicode-data.cpp` (llama-cpp-python 0.3.36; Unicode 15.1): do not edit.\n\n"
        "/// Runs of codepoints with one class, as `first_codepoint << 3 | class`, ascending.\n"
        f"pub(super) static RUNS: [u32; {len(runs)}] = [\n"
        + "".join(f"    {row},\n" for row in rows)
        + "];\n"
    )
    print(f"{UNICODE_RS}: {len(runs)} runs")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unicode-table", metavar="UNICODE_DATA_CPP")
    args = parser.parse_args()
    if args.unicode_table:
        unicode_table(args.unicode_table)
        return
    lines = corpus()
    FIXTURES.mkdir(parents=True, exist_ok=True)
    (FIXTURES / "corpus.json").write_text(json.dumps({"lines": lines}, indent=1, ensure_ascii=False) + "\n")
    for name, commit_vocab in MODELS.items():
        reference(name, lines, commit_vocab)
    pre_tokenizer_variants(lines)


if __name__ == "__main__":
    main()
