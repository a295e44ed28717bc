"""Fixtures for src/diffusion/clip-tokenizer.ts.
Run: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/clip_tokenizer.py

1. Converts OpenAI's CLIP BPE vocabulary (clip/bpe_simple_vocab_16e6.txt.gz, MIT) to the Hugging Face
   layout that Stable Diffusion checkpoints ship in tokenizer/: vocab.json (token -> id, in OpenAI's
   order: 256 byte symbols, the same with </w>, one per merge, then <|startoftext|>, <|endoftext|>)
   and merges.txt ("#version: 0.2" then the 48,894 merges CLIP uses). Written gzipped to
   test/fixtures/diffusion/clip-vocab/.
2. Tokenizes a few hundred varied prompts with OpenAI's own SimpleTokenizer and writes
   test/fixtures/diffusion/clip-tokenizer.json: per prompt, the ids with <|startoftext|> and
   <|endoftext|>, untruncated ("ids").
3. The same prompts as transformers' CLIPTokenizer (what diffusers uses) splits them when ftfy is not
   installed (a default install): special tokens split out of the text first (SD 1.x: <|startoftext|>,
   <|endoftext|>; SD 2.x / SDXL's tokenizer_2 also its pad token "!", diffusers issue 4153), each
   piece cleaned by transformers' BasicTokenizer rules (control and format characters dropped,
   whitespace to spaces, spaces around CJK ideographs, NFC, split on whitespace, lower-cased), then
   OpenAI's pattern and BPE. transformers is not in the oracle, so those rules are written out below
   with Python's unicodedata, and the BPE is OpenAI's. Stored only where the ids differ from "ids":
   "hf_ids" (SD 1.x specials) and "hf_sd2_ids" (with "!" special).

The oracle's ftfy is a stub (fix_text is the identity); real ftfy also NFC-normalizes, so prompts are
NFC-normalized here before OpenAI's tokenizer sees them, as they would be with ftfy installed.
"""
import gzip, json, os, random, unicodedata
import regex as re
from clip.simple_tokenizer import SimpleTokenizer, default_bpe, bytes_to_unicode

here = os.path.dirname(__file__)
out_dir = os.path.join(here, "..", "..", "test", "fixtures", "diffusion")
os.makedirs(os.path.join(out_dir, "clip-vocab"), exist_ok=True)

tok = SimpleTokenizer()
merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
vocab = {k: v for k, v in sorted(tok.encoder.items(), key=lambda kv: kv[1])}
assert len(vocab) == 49408 and vocab["<|endoftext|>"] == 49407
def write_gz(name, text):  # mtime 0: the same bytes on every run
    with open(os.path.join(out_dir, "clip-vocab", name), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as fh:
        fh.write(text.encode("utf-8"))
write_gz("vocab.json.gz", json.dumps(vocab, ensure_ascii=False, separators=(",", ":")))
write_gz("merges.txt.gz", "#version: 0.2\n" + "\n".join(merges) + "\n")

rng = random.Random(21)
words = ("a photo of an astronaut riding horse on mars highly detailed digital painting artstation concept art smooth "
         "sharp focus illustration by greg rutkowski cinematic lighting 8k octane render portrait beautiful woman cat dog "
         "castle forest sunset landscape trending oil canvas masterpiece best quality ultra realistic cyberpunk city night "
         "neon rain reflections watercolor sketch anime studio ghibli unreal engine volumetric fog bokeh 35mm f/1.8").split()
fixed = [
    "", " ", "   leading and trailing   ", "a  photo\tof\n\na   cat", "don't stop", "it's we'll they're I've you'd I'M HE'LL",
    "DON'T SHOUT", "rock'n'roll", "o'clock", "'quoted' \"double\"", "hello, world!", "wait... what?!", "100% real",
    "3.14159", "1,000,000 dollars", "year 2024", "4k 8K 16k", "#hashtag @mention", "a+b=c", "C++ & C#", "e-mail: foo@bar.com",
    "https://example.com/path?q=1&r=2", "(masterpiece:1.2), [bad], {good}", "<lora:foo:0.8>", "snake_case and kebab-case",
    "café crème brûlée", "naïve résumé", "Ångström", "Straße", "ÉCOLE", "İstanbul", "ΣΊΣΥΦΟΣ", "Москва зимой",
    "東京タワー", "北京 and 上海", "한국어 문장", "مرحبا بالعالم", "שלום", "हिन्दी", "ภาษาไทย",
    "🐱 cat emoji", "👨‍👩‍👧‍👦 family", "🇫🇷 flag", "emoji🔥inside", "❤️ love", "✨✨✨", "½ ¾ ²", "①②③", "٣ arabic digit",
    "ﬁ ligature", "Ｆｕｌｌｗｉｄｔｈ", "em—dash – en dash", "“smart quotes” ‘single’", "…ellipsis", "tab\there",
    "non\u00a0breaking\u2003space", "zero\u200bwidth", "<|startoftext|>inside<|endoftext|>", "&amp; &lt;tag&gt; &quot;q&quot;",
    "&#39;apos&#39; &#x263A;", "a" * 100, "ab" * 60, "supercalifragilisticexpialidocious", "x" + "!" * 30,
    "a, " * 50, "wow!!! amazing! ! !! !!!", "soft\u00adhyphen", "private\ue000use", "bidi\u200emark", "漢字かな交じり文",
    "replacement\ufffdchar", "ctrl\x07bell", "line\u2028sep", "ｶﾀｶﾅ", " ".join(words), " ".join(words[:40]), "(((extremely detailed)))", "[[[low quality]]]",
]
prompts = list(fixed)
pool = words + ["don't", "it's", "'s", "café", "🔥", "東京", "Москва", ",", ".", "!", "?", "...", "1", "23", "456", "&", "-", "_",
                "(", ")", ":", ";", "/", "\\", "'", '"', "  ", "\t", "ñ", "ü", "ß", "é", "Ω", "∞", "©", "™", "°", "±"]
for i in range(330):
    n = rng.randint(1, 70 if i % 10 else 120)
    parts = [rng.choice(pool) for _ in range(n)]
    sep = rng.choice([" ", " ", " ", "", ", "])
    p = sep.join(parts)
    if rng.random() < 0.3:
        p = p.upper() if rng.random() < 0.5 else p.title()
    prompts.append(p)

PY_CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
          (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]

def basic_clean_hf(text):
    """transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False), as rules."""
    out = []
    for ch in text:
        cp, cat = ord(ch), unicodedata.category(ch)
        if cp == 0 or cp == 0xFFFD or (ch not in "\t\n\r" and cat.startswith("C")):
            continue
        if ch in " \t\n\r" or cat == "Zs":
            out.append(" ")
        elif any(a <= cp <= b for a, b in PY_CJK):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFC", "".join(out))
    return " ".join(w.lower() for w in text.split())

def hf_ids(text, specials):
    ids, i, piece = [], 0, ""
    def flush(piece):
        for token in re.findall(tok.pat, basic_clean_hf(piece)):
            token = "".join(tok.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(tok.encoder[t] for t in tok.bpe(token).split(" "))
    while i < len(text):
        hit = max((sp for sp in specials if text.startswith(sp, i)), key=len, default=None)
        if hit:
            flush(piece); piece = ""
            ids.append(tok.encoder[hit]); i += len(hit)
        else:
            piece += text[i]; i += 1
    flush(piece)
    return ids

cases = []
bos, eos = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
for p in prompts:
    ids = [bos] + tok.encode(unicodedata.normalize("NFC", p)) + [eos]
    case = {"prompt": p, "ids": ids}
    hf1 = [bos] + hf_ids(p, ["<|startoftext|>", "<|endoftext|>"]) + [eos]
    hf2 = [bos] + hf_ids(p, ["<|startoftext|>", "<|endoftext|>", "!"]) + [eos]
    if hf1 != ids: case["hf_ids"] = hf1
    if hf2 != hf1: case["hf_sd2_ids"] = hf2
    cases.append(case)
with open(os.path.join(out_dir, "clip-tokenizer.json"), "w", encoding="utf-8") as fh:
    json.dump({"source": "OpenAI CLIP simple_tokenizer.py, bpe_simple_vocab_16e6", "cases": cases}, fh, ensure_ascii=False, indent=0)
print(len(cases), "prompts; longest", max(len(c["ids"]) for c in cases), "ids;", sum("hf_ids" in c for c in cases), "differ in transformers;", sum("hf_sd2_ids" in c for c in cases), "differ with SD 2.x specials")
