#!/usr/bin/env python3
"""Writes src/tokenizer/unicode_nfc_tables.cpp, the data behind the NFC normalizer.

    scripts/gen_unicode_nfc.py --ucd DIR [--cap 9.0] [--out FILE]

DIR holds UnicodeData.txt, CompositionExclusions.txt, DerivedAge.txt and
DerivedNormalizationProps.txt of any Unicode version at or above the cap
(Debian's `unicode-data` package puts them in /usr/share/unicode; the
committed tables came from its 15.0.0-1:
`apt-get download unicode-data && dpkg -x unicode-data_*.deb x`, then
`--ucd x/usr/share/unicode`).

Why a cap: HF tokenizers normalizes with the crate
unicode-normalization-alignments 0.1.12, whose tables are Unicode 9.0.0. A
character encoded after 9.0 is unassigned there: combining class 0, no
decomposition, no composition. Unicode's stability policies freeze the
decomposition, combining class and composition exclusion of every character
once it is encoded, so the 9.0 tables are exactly the newer data restricted
to characters whose Age is at most 9.0; this script builds them that way and
checks the result against the newer file's own NFC_Quick_Check and
Full_Composition_Exclusion.
"""

import argparse
import bisect
import os
import re
import sys

BLOCK_BITS = 7  # the trie's second stage holds 128 code points per block
HANGUL_S_BASE, HANGUL_S_COUNT = 0xAC00, 11172
HANGUL_V = range(0x1161, 0x1176)
HANGUL_T = range(0x11A8, 0x11C3)
QC_YES, QC_MAYBE, QC_NO = 0, 1, 2
# Code points below this are NFC_QC=Yes with combining class 0: text made only
# of them is NFC already (the normalizer's byte-level fast path relies on it).
FAST_PATH_LIMIT = 0x300


def ucd_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                yield [field.strip() for field in line.split(";")]


def code_range(field):
    first, _, last = field.partition("..")
    return int(first, 16), int(last or first, 16)


def file_version(path):
    with open(path, encoding="utf-8") as f:
        match = re.search(r"-(\d+\.\d+\.\d+)\.txt", f.readline())
    if not match:
        sys.exit(f"{path}: no version in its first line")
    return match.group(1)


def version_tuple(text):
    return tuple(int(part) for part in text.split("."))


class Ages:
    """Which code points were assigned by the cap version."""

    def __init__(self, path, cap):
        self.ranges = sorted(code_range(f[0]) for f in ucd_lines(path) if version_tuple(f[1]) <= cap)
        self.starts = [r[0] for r in self.ranges]

    def assigned(self, cp):
        i = bisect.bisect_right(self.starts, cp) - 1
        return i >= 0 and self.ranges[i][0] <= cp <= self.ranges[i][1]


def read_unicode_data(path, ages):
    """Combining classes and canonical decomposition mappings of assigned code points."""
    ccc, decomposition = {}, {}
    for fields in ucd_lines(path):
        cp = int(fields[0], 16)
        if fields[1].endswith(", Last>") or not ages.assigned(cp):
            continue  # ranges (CJK, Hangul, ...) have class 0 and no mapping
        if int(fields[3]):
            ccc[cp] = int(fields[3])
        if fields[5] and not fields[5].startswith("<"):
            decomposition[cp] = [int(x, 16) for x in fields[5].split()]
    return ccc, decomposition


def full_decomposition(cp, decomposition):
    if cp not in decomposition:
        return [cp]
    return [d for part in decomposition[cp] for d in full_decomposition(part, decomposition)]


def derived_property(path, name, ages):
    """{code point: value} of one property in DerivedNormalizationProps.txt, assigned code points only."""
    values = {}
    for fields in ucd_lines(path):
        if fields[1] != name:
            continue
        first, last = code_range(fields[0])
        for cp in range(first, last + 1):
            if ages.assigned(cp):
                values[cp] = fields[2] if len(fields) > 2 else True
    return values


def build(ucd, cap):
    ages = Ages(os.path.join(ucd, "DerivedAge.txt"), cap)
    ccc, decomposition = read_unicode_data(os.path.join(ucd, "UnicodeData.txt"), ages)
    exclusions = set()
    for fields in ucd_lines(os.path.join(ucd, "CompositionExclusions.txt")):
        first, last = code_range(fields[0])
        exclusions.update(cp for cp in range(first, last + 1) if ages.assigned(cp))

    # Full_Composition_Exclusion: listed exclusions, singletons, non-starter decompositions.
    full_exclusion = {
        cp
        for cp, parts in decomposition.items()
        if cp in exclusions or len(parts) == 1 or ccc.get(cp, 0) or ccc.get(parts[0], 0)
    }
    compositions = {tuple(parts): cp for cp, parts in decomposition.items() if cp not in full_exclusion}
    assert all(len(pair) == 2 for pair in compositions)

    quick_check = {cp: QC_NO for cp in full_exclusion}
    for _, second in compositions:
        quick_check[second] = QC_MAYBE
    for cp in list(HANGUL_V) + list(HANGUL_T):
        quick_check[cp] = QC_MAYBE

    # The derivation must agree with the newer file's own derived properties.
    props = os.path.join(ucd, "DerivedNormalizationProps.txt")
    expected_exclusion = set(derived_property(props, "Full_Composition_Exclusion", ages))
    assert full_exclusion == expected_exclusion, sorted(full_exclusion ^ expected_exclusion)[:10]
    expected_qc = {cp: {"N": QC_NO, "M": QC_MAYBE}[v] for cp, v in derived_property(props, "NFC_QC", ages).items()}
    assert quick_check == expected_qc, sorted(set(quick_check.items()) ^ set(expected_qc.items()))[:10]
    assert all(cp >= FAST_PATH_LIMIT for cp in list(ccc) + list(quick_check))

    full = {cp: full_decomposition(cp, decomposition) for cp in decomposition}
    return ccc, quick_check, full, compositions


def trie(ccc, quick_check, decompositions):
    """Two-stage table of ccc | qc << 8 | has-decomposition << 10, deduplicated blocks."""
    interesting = set(ccc) | set(quick_check) | set(decompositions)
    limit = ((max(interesting) >> BLOCK_BITS) + 1) << BLOCK_BITS
    blocks, index, block_ids = [], [], {}
    for start in range(0, limit, 1 << BLOCK_BITS):
        block = tuple(
            ccc.get(cp, 0) | quick_check.get(cp, QC_YES) << 8 | (cp in decompositions) << 10
            for cp in range(start, start + (1 << BLOCK_BITS))
        )
        if block not in block_ids:
            block_ids[block] = len(blocks)
            blocks.append(block)
        index.append(block_ids[block])
    return limit, index, blocks


def wrap(values, per_line, fmt):
    items = [fmt(v) for v in values]
    return "\n".join("    " + ", ".join(items[i : i + per_line]) + "," for i in range(0, len(items), per_line))


def render(versions, cap_text, ccc, quick_check, decompositions, compositions):
    limit, index, blocks = trie(ccc, quick_check, decompositions)
    assert len(blocks) < 1 << 16
    pool, entries = [], []
    for cp in sorted(decompositions):
        entries.append((cp, len(pool), len(decompositions[cp])))
        pool.extend(decompositions[cp])
    assert len(pool) < 1 << 16 and max(e[2] for e in entries) < 1 << 8
    pairs = sorted(((a << 21) | b, cp) for (a, b), cp in compositions.items())
    hex_ = lambda v: f"0x{v:X}"
    return f"""\
// Generated by scripts/gen_unicode_nfc.py from the Unicode {versions} character
// database, restricted to characters assigned by Unicode {cap_text} (the version
// HF tokenizers normalizes with). Do not edit; run the script instead.
#include "tokenizer/unicode_nfc_tables.h"

namespace lp::detail::nfc {{

const char* const kUnicodeVersion = "{cap_text}";
const uint32_t kTrieLimit = {hex_(limit)};

const uint16_t kTrieIndex[] = {{
{wrap(index, 16, str)}
}};

const uint16_t kTrieBlocks[] = {{
{wrap((v for block in blocks for v in block), 12, hex_)}
}};

const Decomposition kDecompositions[] = {{
{wrap(entries, 4, lambda e: f"{{{hex_(e[0])}, {e[1]}, {e[2]}}}")}
}};
const size_t kDecompositionCount = {len(entries)};

const uint32_t kDecompositionPool[] = {{
{wrap(pool, 10, hex_)}
}};

const Composition kCompositions[] = {{
{wrap(pairs, 3, lambda p: f"{{{hex_(p[0])}, {hex_(p[1])}}}")}
}};
const size_t kCompositionCount = {len(pairs)};

}}  // namespace lp::detail::nfc
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ucd", required=True, help="folder with the Unicode character database files")
    parser.add_argument("--cap", default="9.0", help="newest Unicode version whose characters count (default 9.0)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "src", "tokenizer",
                                                      "unicode_nfc_tables.cpp"))
    args = parser.parse_args()
    cap = version_tuple(args.cap)
    version = file_version(os.path.join(args.ucd, "DerivedAge.txt"))
    if version_tuple(version) < cap:
        sys.exit(f"the database is Unicode {version}, older than the cap {args.cap}")
    for name in ("UnicodeData.txt", "CompositionExclusions.txt", "DerivedNormalizationProps.txt"):
        path = os.path.join(args.ucd, name)
        if name != "UnicodeData.txt" and file_version(path) != version:
            sys.exit(f"{path} is not Unicode {version} like DerivedAge.txt")
    cap_text = ".".join(map(str, cap + (0,) * (3 - len(cap))))
    tables = build(args.ucd, cap)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(render(version, cap_text, *tables))
    ccc, quick_check, decompositions, compositions = tables
    print(f"{args.out}: Unicode {version} capped at {cap_text}: {len(ccc)} combining classes, "
          f"{len(decompositions)} decompositions, {len(compositions)} compositions")


if __name__ == "__main__":
    main()
