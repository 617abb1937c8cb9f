"""Readers for plain text files and for the text datasets the benchmarks use: WikiText-2 and SST-2 (GLUE)."""

import csv
import glob
import os


def _check_file(path):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Expected a text file. Received a path that is not a file: {path}")
    return path


def _text_files(path_or_glob):
    path = os.path.expanduser(os.fspath(path_or_glob))
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        found = []
        for root, folders, files in os.walk(path):
            folders[:] = [f for f in folders if not f.startswith(".")]
            found += [os.path.join(root, f) for f in files if f.lower().endswith(".txt") and not f.startswith(".")]
        if not found:
            raise ValueError(f"Expected .txt files below the folder {path}. Received: a folder without any")
        return sorted(found, key=lambda f: os.path.relpath(f, path))
    if glob.has_magic(path):
        found = sorted(f for f in glob.glob(path, recursive=True) if os.path.isfile(f))
        if not found:
            raise ValueError(f"Expected text files matching {path!r}. Received: no file matches it")
        return found
    raise ValueError(f"Expected a text file, a folder of .txt files or a glob. Received: {path!r} (no such path)")


def read_text_files(path_or_glob):
    """The paragraphs of plain text files: one per non-empty line, stripped, in file then line order.

    `path_or_glob` is a text file (any extension), a folder (every .txt file
    below it, at any depth, sorted by relative path; hidden files and folders
    skipped), or a glob (e.g. "notes/**/*.md"; `**` spans folders). Files are
    read as UTF-8; one that is not is a ValueError naming it, as is a
    selection of files that holds no text at all.
    """
    files = _text_files(path_or_glob)
    paragraphs = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                paragraphs += [line.strip() for line in f if line.strip()]
        except UnicodeDecodeError as error:
            raise ValueError(f"Expected UTF-8 text. Received: {path}, which is not ({error.reason})") from error
    if not paragraphs:
        raise ValueError(f"Expected text. Received: {len(files)} file(s) for {os.fspath(path_or_glob)!r}, all blank")
    return paragraphs


def load_wikitext(path):
    """The non-empty lines of a WikiText `wiki.*.tokens` file, stripped.

    WikiText marks rare words `<unk>`; they become `[UNK]`, the tokenizer's
    unknown token, so they are not split into "<", "unk", ">".
    """
    with open(_check_file(path), encoding="utf-8") as f:
        lines = [line.strip().replace("<unk>", "[UNK]") for line in f]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f"{path} holds no text.")
    return lines


def load_sst2(path):
    """`(sentences, labels)` of a GLUE SST-2 `train.tsv`/`dev.tsv` (header `sentence<TAB>label`)."""
    sentences, labels = [], []
    with open(_check_file(path), encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header != ["sentence", "label"]:
            raise ValueError(
                f"Expected a labelled SST-2 file with the header sentence<TAB>label. Received header {header} in {path}"
            )
        for number, row in enumerate(reader, start=2):
            if len(row) != 2 or row[1] not in ("0", "1"):
                raise ValueError(f"{path}, line {number}: expected a sentence and a 0/1 label. Received: {row!r}")
            sentences.append(row[0].strip())
            labels.append(int(row[1]))
    return sentences, labels


def drop_subphrases(phrases):
    """The phrases that are not a run of words inside a longer phrase, deduplicated, in their first order.

    SST-2's `train.tsv` labels every phrase of its sentences' parse trees:
    its 67,349 rows hold 6,885 such maximal phrases (about the sentences;
    133k words). That is the unlabelled text to pretrain on; the full list
    repeats each word about five times. Words are split on whitespace (SST is
    already tokenized).
    """
    words = [tuple(phrase.split()) for phrase in phrases]
    known = set(words)
    inside = set()  # phrases seen as a shorter run of a kept phrase
    for phrase in sorted(known, key=len, reverse=True):
        if phrase in inside:
            continue
        n = len(phrase)
        runs = (phrase[i:j] for i in range(n) for j in range(i + 1, n + 1) if j - i < n)
        inside.update(run for run in runs if run in known)
    kept, seen = [], set()
    for phrase in words:
        if phrase and phrase not in inside and phrase not in seen:
            seen.add(phrase)
            kept.append(" ".join(phrase))
    return kept
