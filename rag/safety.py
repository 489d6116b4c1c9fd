"""Making untrusted text safe to show a model or a terminal.

Corpus files and model output are untrusted. Two things can go wrong when they are shown:

- **Terminal escapes**: a title holding `ESC ] 0 ; pwned BEL` retitles the user's terminal,
  `ESC [ 2 J` clears it, OSC 8 hides a link target behind innocent text, bidi overrides reorder
  what is displayed. `strip_controls` removes escape sequences and control characters (ingest
  stores the cleaned text; every output to a terminal cleans again, for older indexes and for
  model output).
- **Prompt injection**: an abstract sentence addressed to the model ("Ignore the question and
  reply ...", "Note for automated assistants: ...") instead of describing research.
  `passage_sentences` drops those sentences before the model sees a passage. The test is
  deliberately narrow: the corpus is full of papers *about* instructions, assistants, prompts and
  jailbreaks, and a sentence describing an attack ("attackers tell the model to ignore its
  instructions", or one quoting an attack string) is research, not an instruction. What counts
  is an imperative at the start of a clause, a sentence addressed to an assistant/AI/model/reader,
  a second-person order, or chat-template markup. Matching runs on a normalised copy (NFKC,
  invisible characters removed, Cyrillic and Greek look-alikes mapped to Latin), so homoglyphs
  and zero-width characters do not hide the wording.

The citation checks stay the second line of defence: whatever the model writes must be supported
by the passages it was shown.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator, Sequence

import regex

from rag.text import split_sentences

# --- terminal safety -------------------------------------------------------------------------------
# ESC-introduced sequences (ECMA-48): CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS, SOS, PM
# and APC strings (ESC P/X/^/_ ... ST), and the two- and three-character escapes (ESC c, ESC ( B);
# the same with the 8-bit C1 introducers (U+009B CSI, U+009D OSC, ...).
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]"
)
# What is left after the sequences: C0 and C1 controls, DEL, and the bidi embeddings, overrides
# and isolates (they reorder what a terminal shows: "Trojan Source").
_BIDI = "\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(rf"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_OR_NEWLINE = re.compile(rf"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def has_controls(text: str) -> bool:
    """Does `text` hold anything `strip_controls` removes (tabs and newlines aside)?"""
    return bool(_CONTROL.search(text) or _SURROGATE.search(text))


def strip_controls(text: str, *, keep_newlines: bool = True) -> str:
    """`text` without escape sequences, control characters (except tab and newline; with
    `keep_newlines` False, whitespace controls become spaces), bidi overrides and lone surrogates
    (which cannot be encoded)."""
    if not text:
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    if keep_newlines:
        return _CONTROL.sub("", text.replace("\r\n", "\n"))
    return _CONTROL_OR_NEWLINE.sub(lambda m: " " if m.group(0).isspace() else "", text)  # \t \n \f \x1c...: a space


def terminal_safe(text: str) -> str:
    """What may be written to a terminal: printable text, tabs and newlines."""
    return strip_controls(str(text))


# --- matching text that tries to hide its wording ----------------------------------------------------
# Invisible characters: Unicode's Default_Ignorable_Code_Point (zero-width spaces and joiners, the soft
# hyphen, the combining grapheme joiner, variation selectors, Hangul fillers, tag characters, ...), every
# format character (Cf) and every combining mark (accents, Zalgo overlays; NFKD has split them from their
# letters first). The property comes from the `regex` module's Unicode tables, not from a hand list.
_INVISIBLE = regex.compile(r"[\p{Default_Ignorable_Code_Point}\p{Cf}\p{M}]+")
# The ignorables drawn as a blank (the Hangul fillers, letters by category): they can stand for a space
# ("Ignore<U+3164>the<U+3164>question") as well as hide inside a word, so matching tries both readings.
_BLANK = regex.compile(r"(?V1)[\p{Default_Ignorable_Code_Point}&&\p{L}]")
# Quotes and dashes in one form each (punctuation, which the look-alike table below leaves alone).
_PUNCTUATION = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    }
)
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")
# Lower-case Cyrillic and Greek letters that read as Latin ones in running text, though UTS #39 maps
# them to no ASCII letter (it pairs "к" with "ĸ", "ε" with "ɛ"): the few that earlier versions of this
# filter mapped by hand.
_READ_AS_LATIN = {"к": "k", "м": "m", "ь": "b", "β": "b", "ε": "e", "κ": "k", "χ": "x", "ω": "w"}
_LOOK_ALIKES: dict[int, str] | None = None


def _look_alikes() -> dict[int, str]:
    """Letters of other scripts mapped to the ASCII letters they look like, for `str.translate`.

    Two sources, both data: Unicode's confusables (UTS #39, as packaged by `confusable_homoglyphs`):
    each non-ASCII letter whose prototype is one to three ASCII letters (Cyrillic "о", Greek "ο",
    Armenian "օ", Cherokee "Ꭺ", "ꜱ", ... 1,300 of them); and the Latin small capitals by their
    Unicode names ("LATIN LETTER SMALL CAPITAL G" -> g), which UTS #39 mostly leaves out ("ɢ", "ɴ",
    "ʀ", "ᴇ"). Built once, on the first text that holds a non-ASCII letter (~0.1 s).
    """
    global _LOOK_ALIKES
    if _LOOK_ALIKES is None:
        from confusable_homoglyphs.confusables import confusables_data

        small_capitals: dict[str, str] = {}
        for block in (range(0x0250, 0x02B0), range(0x1D00, 0x1DC0), range(0xA720, 0xA800), range(0xAB30, 0xAB70)):
            for code in block:  # IPA, Phonetic Extensions, Latin Extended-D and -E: where the small capitals are
                if match := _SMALL_CAPITAL.fullmatch(unicodedata.name(chr(code), "")):
                    small_capitals[chr(code)] = match.group(1).lower()
        table = {ord(c): letter for c, letter in (small_capitals | _READ_AS_LATIN).items()}
        for char, glyphs in confusables_data.items():
            if len(char) != 1 or char.isascii():
                continue
            # An ASCII prototype, else a small capital ("в" looks like "ʙ", which reads as b).
            letters = [g["c"] for g in glyphs if g["c"].isascii() and g["c"].isalpha() and len(g["c"]) <= 3]
            letters += [small_capitals[g["c"]] for g in glyphs if g["c"] in small_capitals]
            if letters:
                table[ord(char)] = letters[0].lower()
        _LOOK_ALIKES = table
    return _LOOK_ALIKES


def normalise_for_matching(text: str, *, blank: str = "") -> str:
    """A copy of `text` for pattern matching only: NFKD (full-width and math letters become plain ones,
    accents come apart), invisible characters and combining marks removed (the blank-drawn ones
    replaced by `blank`), case folded, letters of other scripts that look like Latin ones mapped to
    them (Cyrillic, Greek, Armenian, Cherokee, small capitals), whitespace collapsed."""
    text = unicodedata.normalize("NFKD", strip_controls(text, keep_newlines=False))
    if blank:
        text = _BLANK.sub(blank, text)
    text = _INVISIBLE.sub("", text).translate(_PUNCTUATION)
    if not text.isascii() and any(c.isalpha() and not c.isascii() for c in text):
        # Before and after case folding: confusables hold some letters in one case only ("В" -> B;
        # Cherokee small letters fold to the capitals).
        look_alikes = _look_alikes()
        text = text.translate(look_alikes).casefold().translate(look_alikes)
    return " ".join(text.casefold().split())


def _readings(text: str) -> list[str]:
    """The normalised copies of `text` to match: one, or two where a blank-drawn ignorable may stand for a space."""
    readings = [normalise_for_matching(text)]
    if _BLANK.search(unicodedata.normalize("NFKD", text)):
        readings.append(normalise_for_matching(text, blank=" "))
    return readings


# --- instructions addressed to the model -------------------------------------------------------------
_WHO = (
    r"(?:ai|a\.i\.|artificial intelligence|(?:ai |automated |virtual |digital |research |llm[- ]based )?assistants?"
    r"|chat ?bots?|bots?|llms?|large language models?|language models?|lms?|gpts?|chatgpt|claude|gemini|copilot"
    r"|(?:ai |automated |autonomous )?agents?|(?:automated |ai )?(?:readers?|reviewers?|summari[sz]ers?|systems?|tools?"
    r"|crawlers?|pipelines?|models?)|machines?|robots?|rag systems?)"
)
# Where an imperative can start: the start of the sentence or of a clause (not after a comma:
# "Existing methods, however, ignore the context" is research), after an optional politeness or
# sequencing word ("please", "now", "instead, ...").
_CLAUSE = r"(?:^|[:;!?(\[.]\s*|\s-{1,2}\s)"
_SOFTENERS = r"(?:(?:please|kindly|now|instead|also|just|simply|then|so|first|finally|immediately|rather|and)[,]?\s+)*"
_OBJECTS = (
    r"(?:(?:all|any|the|your|every|these|those|this|my|its|their|earlier|prior|previous|preceding|above|original|other"
    r"|following|given|actual|real|user'?s?|system)\s+)*"
    r"(?:instructions?|questions?|quer(?:y|ies)|prompts?|passages?|context|rules?|guidelines?|directions?|directives?"
    r"|everything|all|above|user|task|system (?:prompt|message)|messages?|requests?|documents?|sources?|abstracts?|text)\b"
)
_IMPERATIVES = [
    # overriding what the model was told
    rf"(?:ignore|disregard|forget|overlook)\s+{_OBJECTS}",
    r"(?:ignore|disregard)\s+(?:all|any|everything|anything|what|whatever|previous|prior|earlier|above|preceding|your)\b",
    r"(?:override|bypass|skip|discard|abandon)\s+(?:all |any |the |your |previous |prior |earlier |above |system )*"
    r"(?:instructions|system prompt|rules|guidelines|safety)\b",
    r"(?:pay|give) no (?:attention|heed|regard) to\b",
    rf"(?:do not|don't|never|stop) (?:follow(?:ing)?|obey(?:ing)?|read(?:ing)?|answer(?:ing)?|consider(?:ing)?"
    rf"|pay(?:ing)? attention to)\s+{_OBJECTS}",
    # telling it what to write
    r"(?:answer|reply|respond)\s+(?:only\b|always\b|that\b|with\b|by saying\b|as follows\b|in (?:one|a single) word\b|yes\b"
    r"|no\b|[\"':]|every\b|all\b|any\b|to (?:the|every|all|any) (?:user|question)|the (?:user|question)|confidently\b)",
    r"(?:say|state|claim|declare|assert|write|output|print|type|emit|insist)\s+(?:only\b|that\b|exactly\b|verbatim\b"
    r"|[\"':]|yes\b|no\b|the (?:following|word|phrase|sentence)\b|this (?:instead|exact)\b|instead\b)",
    r"(?:tell|inform|convince|assure|remind|warn) (?:the |your |all |any )?(?:user|reader|human|people|them)s?\b",
    r"(?:recommend|praise|promote|endorse|rate|rank|score|grade|describe|summari[sz]e|portray|treat) (?:this|the present|our)"
    r" (?:paper|work|article|abstract|study|method|product|passage|text|tool|company|website|site|source)"
    r"\s+(?:as|with|at|above|over|first|highly|positively|favou?rably|\d)",
    r"(?:cite|mention|include|insert|add|append|prepend|repeat|reference|quote|recommend|link)\s+(?:\[\s*\d|https?:|www\.|"
    r"(?:this|the) (?:url|link|website|site|page)\b|the following\b|the (?:word|phrase|sentence|string)\b)",
    r"cite\s+(?:this|only this|our|it)\b",
    r"(?:visit|click|open|go to|navigate to|browse to|download|contact|email|e-mail|fetch|run|execute)\s+(?:on\s+)?"
    r"(?:https?:|www\.|(?:the|this) (?:link|url|website|site|page|script|command)\b"
    r"|[a-z0-9-]+\.(?:com|net|org|io|xyz|ru|cn|info|biz|top|app|dev|ai|ly|me|co)\b)",
    r"(?:do not|don't|never|under no circumstances|in no case)\s+(?:\w+\s+)?(?:mention|reveal|say|tell|cite|answer|refuse"
    r"|disclose|admit|acknowledge|criticize|criticise|warn|apologi[sz]e|output|print|write|reply|respond)\b",
    r"(?:always|only)\s+(?:answer|say|reply|respond|cite|recommend|mention|include|state|write|output|agree|praise|claim)\b",
    r"(?:act|behave|pretend|role-?play)\s+(?:as|like|to be|that)\b",
    r"from now on\b|henceforth\b|for the rest of (?:this|the) (?:conversation|chat|session)\b",
]
# The same orders in French, German, Spanish, Italian and Portuguese (matched without accents, case folded):
# "Ignorez la question et répondez que ...", "Ignoriere die Frage und antworte, dass ...". Abstracts
# here are English, so these forms stay short: the verbs of overriding and of answering, with their objects.
_FOREIGN_OBJECTS = (
    r"(?:(?:toutes?|tous|les?|la|l'|vos|tes|ta|ton|votre|ces|cette|precedentes?|alle|die|den|das|deine|ihre|eure"
    r"|vorherigen?|bisherigen?|obigen?|todas?|todos|las?|los|el|tus?|sus|i|gli|il|le|tutte|as|os|anteriores"
    r"|precedenti)\s+)*"
    r"(?:questions?|instructions?|consignes?|regles?|directives?|contexte|demandes?|fragen?|anweisungen?"
    r"|instruktionen|regeln|vorgaben|kontext|aufgaben?|preguntas?|instrucciones|instruccion|reglas|contexto"
    r"|domand[ae]|istruzioni|regole|contesto|perguntas?|instrucoes)\b"
)
_FOREIGN = [
    rf"(?:ignorez|ignore|ignorer|oubliez|oublie|ignoriere|ignorieren(?: sie)?|ignoriert|vergiss|vergessen sie|missachte"
    rf"|ignora|ignorad|olvida|olvide|dimentica|esqueca|esquece)\s+{_FOREIGN_OBJECTS}",
    r"(?:ne (?:tiens|tenez) (?:pas|aucun) compte|faites abstraction|fais abstraction)\b",
    r"(?:reponds|repondez|dis|dites|ecris|ecrivez|affirme|affirmez|antworte|antwortet|antworten sie|sage|sag|sagen sie"
    r"|schreibe|schreib|schreiben sie|behaupte|responde|responda|contesta|rispondi|risponda|scrivi|escribe|diga)"
    r"\s+(?:(?:uniquement|seulement|simplement|toujours|nur|ausschliesslich|immer|einfach|solo|solamente|unicamente"
    r"|soltanto|sempre|apenas)\s*)*,?\s*(?:que\b|qu'|dass\b|che\b|[\"':])",
]
_FOREIGN_SOFTENERS = (
    r"(?:(?:bitte|jetzt|nun|dann|und|s'il vous plait|maintenant|puis|ensuite|et|por favor|ahora|luego|y|per favore"
    r"|ora|poi|e)[,]?\s+)*"
)
_IMPERATIVE = re.compile(
    _CLAUSE + r"(?:" + _SOFTENERS + r"(?:" + "|".join(_IMPERATIVES) + r")"
    r"|" + _FOREIGN_SOFTENERS + r"(?:" + "|".join(_FOREIGN) + r"))"
)
_THIS_TEXT = (
    r"this (?:paper|abstract|text|document|passage|page|message|note|sentence|line|content|article|work|study)\b"
)
_ADDRESSED = re.compile(
    "|".join(
        [
            # "Note for automated assistants: ...", "Reminder to the AI: ..."
            rf"\b(?:notes?|reminders?|notices?|memo|p\.?s\.?)\s*(?:to|for)\s+(?:the |any |all |every )?{_WHO}\b",
            # "Dear AI,", "Hey assistant:", "Attention LLMs!", "Assistant, ignore ..."
            rf"(?:^|[.:;!?]\s*)(?:dear|hey|hi|hello|greetings|attention|psst|ok|okay)[,]?\s+(?:the |all |any |dear )?{_WHO}\s*[,:;!.-]",
            rf"(?:^|[.:;!?]\s*){_WHO}\s*[,:]\s*(?:please\s+)?(?:ignore|disregard|forget|answer|reply|respond|say|write|output"
            r"|cite|recommend|tell|do not|don't|never|always|you)\b",
            # "If you are an AI ...", "As a language model reading this, ..."
            rf"\b(?:if|when|since|because|while) you(?: a|')re\s+(?:an? |the |any )?(?:\w+ )?{_WHO}\b",
            rf"\b(?:if|when) (?:an? |the |any )?{_WHO} (?:is |are )?(?:reads?|reading|process(?:es|ing)?|summari[sz](?:es|ing)"
            rf"|parses?|parsing|sees?|answers?|answering|is asked about) {_THIS_TEXT}",
            rf"\b{_WHO}\s+(?:that is |who is |that are |currently )?(?:reading|parsing|processing"
            rf"|summari[sz]ing|analy[sz]ing|indexing|ingesting|seeing|scanning|crawling|answering (?:questions )?(?:about|from|on|with))"
            rf"\s+{_THIS_TEXT}",
            rf"\bas an? (?:\w+ )?{_WHO}\b[^.]{{0,40}}\byou\b",
            # "When summarising this paper, ...", "When answering questions about this abstract, ..."
            r"\bwhen (?:you )?(?:summari[sz]ing|answering (?:any )?(?:questions? )?(?:about|on|from)|citing|describing|discussing"
            r"|reviewing|asked about|processing|reading|evaluating|ranking|rating) (?:this|the present) (?:paper|abstract|work"
            r"|article|text|passage|study|document|page|submission)\b",
            # Orders in the second person
            r"\byou (?:must|shall|are (?:now |hereby )?(?:required|instructed|ordered|told|asked|expected|obliged|to)\b"
            r"|will (?:now |always |only )?(?:answer|reply|respond|say|write|output|ignore|disregard|cite|recommend|praise|state"
            r"|include|mention|follow|obey|comply|act|pretend)\b"
            r"|should (?:now |always |only |not |never )?(?:answer|reply|respond|say|ignore|disregard|cite|recommend|state"
            r"|mention|include|output|write|describe|summari[sz]e|praise|rate|follow|obey)\b"
            r"|(?:need|have) to (?:answer|reply|say|ignore|disregard|cite|recommend)\b|may not\b|are not allowed\b)",
            # Orders in the third person: "The assistant must now respond that ...", "Any AI reading this must reply ..."
            rf"\b(?:the|any|every|all|each|this|dear)\s+(?:\w+\s+)?{_WHO}\s+(?:(?:reading|processing|seeing|parsing"
            r"|summari[sz]ing|answering questions about) this\s+(?:\w+\s+)?)?"
            r"(?:must|shall|should|will|is to|are to|has to|have to|needs? to|is required to|are required to"
            r"|is instructed to|are instructed to)\s+(?:(?:now|henceforth|instead|from now on)\s+)(?:only\s+|always\s+)?"
            r"(?:respond|answer|reply|say|state|write|output|print|claim|declare|tell|ignore|disregard|forget|cite"
            r"|recommend|praise|mention)\b",
            rf"\b(?:the|any|every|all|each|this)\s+(?:\w+\s+)?{_WHO}\s+(?:(?:reading|processing|seeing|parsing"
            r"|summari[sz]ing|answering questions about) this\s+(?:\w+\s+)?)?"
            r"(?:must|shall|is to|are to|has to|needs? to)\s+(?:only\s+|always\s+|simply\s+|just\s+)?"
            r"(?:respond|answer|reply|say|state|write|output|print|claim|declare)\s+(?:only\s+)?(?:that\b|[\"':])",
            r"\byour (?:new |real |actual |true |only |next |final )?(?:answers?|responses?|replies|outputs?|summary|summaries"
            r"|task|job|role|instructions?|goal|objective|purpose|mission|priority) (?:must|should|shall|is|are|will|has to"
            r"|needs to|now)\b",
            r"\bnew (?:instructions?|system prompt|directives?|rules?)\s*[:!]",
            # Chat-template markup and role labels
            r"<\|[a-z_]{2,20}\|>|\[/?inst\]|<</?sys>>|<\s*/?\s*(?:system|assistant|user)\s*>",
            r"(?:^|[.!?]\s+)#{0,4}\s*(?:system|assistant|user|developer|admin|operator)(?: (?:prompt|message|note|instruction))?\s*:",
            r"(?:^|[.!?]\s+)(?:important|urgent|attention|warning)\s*(?:note|notice|message)?\s*(?:to|for)?\s*[^:]{0,40}:\s*"
            r"(?:ignore|disregard|forget|answer|reply|respond|say|write|output|cite|always|never|do not|don't|you)\b",
        ]
    )
)
# Quoted text is mentioned, not said: a paper about injections may quote an attack string.
_QUOTED = re.compile(r"\"[^\"]{1,300}\"|(?<!\w)'[^']{1,300}'(?!\w)")
# Bracketed numbers inside a passage would read as citation keys to the model.
_KEY_LIKE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def _unquoted(normalised: str) -> str:
    """The sentence with its quotations blanked, unless the sentence is mostly one quotation."""
    quoted = sum(len(m.group(0)) for m in _QUOTED.finditer(normalised))
    if quoted >= 0.7 * len(normalised):
        return normalised.replace('"', " ").replace("'", " ")
    return _QUOTED.sub(" ", normalised)


def instruction_match(sentence: str) -> str | None:
    """The wording that makes `sentence` an instruction to the model/reader, or None."""
    for reading in _readings(sentence):
        text = _unquoted(reading)
        if match := _IMPERATIVE.search(text) or _ADDRESSED.search(text):
            return match.group(0).strip(" ,;:")
    return None


def is_instruction(sentence: str) -> bool:
    return instruction_match(sentence) is not None


# A finer cut than the sentence splitter's (which needs a Latin capital after the full stop):
# "... margin. forget the context ..." or "... margin. Ｉｇｎｏｒｅ ..." hide in the sentence before.
_PIECE = re.compile(r"(?<=[.!?])\s+")


def _without_instructions(sentence: str) -> str:
    """The sentence, or what remains of it once the pieces that are instructions are cut out."""
    if not is_instruction(sentence):
        return sentence
    pieces = _PIECE.split(sentence)
    if len(pieces) == 1:
        return ""
    return " ".join(piece for piece in pieces if not is_instruction(piece))


def passage_sentences(abstract: str) -> list[str]:
    """The sentences of an abstract that the model may see: no instructions aimed at it, no
    control characters, no citation-like markers."""
    out = []
    for sentence in split_sentences(strip_controls(abstract, keep_newlines=False)):
        kept = _without_instructions(sentence)
        if kept:
            out.append(_KEY_LIKE.sub(r"(\1)", kept))
    return out


MAX_AUTHOR_CHARS = 100  # a real name is far shorter; a longer "author" is text of some other kind


def shown_authors(authors: Sequence[str], limit: int) -> list[str]:
    """The authors of a record that the model may see beside its title: not an instruction, not text
    that only poses as a name. The first `limit` + 1 at most (enough to show `limit` and say that the
    list goes on): a collaboration's thousands of names are not each checked on every search."""
    kept = (a for a in authors if len(a) <= MAX_AUTHOR_CHARS and not is_instruction(a))
    return list(itertools.islice(kept, limit + 1))


class SafeGenerator:
    """Wraps a `Generator` so that its output carries no control characters (model output is
    untrusted text too: it can repeat a passage's escapes or make up its own).

    Pieces are cleaned one by one: an escape sequence split across two pieces loses its ESC and
    is left as inert text.
    """

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.n_ctx = inner.n_ctx

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages: Sequence[dict], **options) -> Iterator[str]:
        pieces = iter(self.inner.stream(messages, **options))
        try:
            for piece in pieces:
                yield strip_controls(piece)
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # stops the model (or the server's stream) when the caller stops early
