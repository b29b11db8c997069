"""A WordPiece vocabulary built locally, for tiny and benchmark models.

Nothing may be downloaded at run time, so the vocabulary of a generated model is
assembled from code: BERT's special tokens, every printable ASCII character both
as a word start and as a ``##`` continuation (so any lower-cased ASCII word has a
tokenization and ``[UNK]`` is rare), and a few hundred common English words so
that ordinary sentences map to whole-word tokens the way they would with a real
BERT vocabulary. Optional ``[unusedN]`` padding reaches a target size (BERT-base
has 30,522 entries), which keeps the embedding matrix shape-faithful.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Common English words; order is fixed so the vocabulary (and so the model's
# digest) is reproducible from the same code.
_WORDS = """
    the of and to a in is it you that he was for on are with as i his they be at one have
    this from or had by not word but what some we can out other were all there when up use
    your how said an each she which do their time if will way about many then them write
    would like so these her long make thing see him two has look more day could go come did
    number sound no most people my over know water than call first who may down side been
    now find any new work part take get place made live where after back little only round
    man year came show every good me give our under name very through just form sentence
    great think say help low line differ turn cause much mean before move right boy old too
    same tell does set three want air well also play small end put home read hand port large
    spell add even land here must big high such follow act why ask men change went light kind
    off need house picture try us again animal point mother world near build self earth
    father head stand own page should country found answer school grow study still learn
    plant cover food sun four between state keep eye never last let thought city tree cross
    farm hard start might story saw far sea draw left late run while press close night real
    life few north open seem together next white children begin got walk example ease paper
    group always music those both mark often letter until mile river car feet care second
    book carry took science eat room friend began idea fish mountain stop once base hear
    horse cut sure watch color face wood main enough plain girl usual young ready above ever
    red list though feel talk bird soon body dog family direct pose leave song measure door
    product black short numeral class wind question happen complete ship area half rock
    order fire south problem piece told knew pass since top whole king space heard best hour
    better true during hundred five remember step early hold west ground interest reach fast
    verb sing listen six table travel less morning ten simple several toward war lay against
    pattern slow center love person money serve appear road map rain rule govern pull cold
    notice voice unit power town fine certain fly fall lead cry dark machine note wait plan
    figure star box noun field rest correct able pound done beauty drive stood contain front
    teach week final gave green quick develop ocean warm free minute strong special mind
    behind clear tail produce fact street inch multiply nothing course stay wheel full force
    blue object decide surface deep moon island foot system busy test record boat common
    gold possible plane dry wonder laugh thousand ago ran check game shape equate hot miss
    brought heat snow tire bring yes distant fill east paint language among model server
    cluster primary standby drill failover latency request batch token ready live drain
    great terrible awful wonderful happy sad movie film review service fast slow broken
    working love hate excellent poor bad nice
    """
COMMON_WORDS: tuple[str, ...] = tuple(_WORDS.split())


def build_vocabulary(
    target_size: int | None = None, words: Iterable[str] = COMMON_WORDS
) -> list[str]:
    """Return the token list (index = token id), padded with ``[unusedN]`` to target_size.

    words are the whole-word tokens after the characters: the common English words by
    default, or a data set's own words (serving/train_tiny.py), in the order given.
    """
    tokens: list[str] = list(SPECIAL_TOKENS)
    seen: set[str] = set(tokens)

    def add(token: str) -> None:
        if token not in seen:
            seen.add(token)
            tokens.append(token)

    # Characters first: BERT lower-cases, so only lower-case letters are needed.
    printable = string.ascii_lowercase + string.digits + string.punctuation
    for char in printable:
        add(char)
    for char in string.ascii_lowercase + string.digits:
        add("##" + char)
    for word in words:
        add(word)
    if target_size is not None:
        if target_size < len(tokens):
            raise ValueError(f"vocabulary needs at least {len(tokens)} entries, got {target_size}")
        index = 0
        while len(tokens) < target_size:
            add(f"[unused{index}]")
            index += 1
    return tokens


def write_vocab_file(tokens: list[str], path: Path) -> None:
    """Write BERT's ``vocab.txt`` format: one token per line, line number = id."""
    path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
