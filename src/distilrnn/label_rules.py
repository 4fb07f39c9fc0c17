"""Label rules. What is the same label: `canonical_label` decides when two raw labels are one
class (surrounding blanks ignored, numbers compared by value, booleans as `true` / `false`,
the case of other strings kept); `label_vocabulary` orders the training labels into label
names, warning about pairs that differ only in case; `raw_labels`, `label_index` and
`encode_labels` turn a split's raw labels into ids.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from distilrnn.errors import DataError

if TYPE_CHECKING:
    from distilrnn.readers import Rows

# the name these rules logged under when they lived in `distilrnn.data`; kept so that log
# filters keep working
logger = logging.getLogger("distilrnn.data")

# an integer or decimal number as written: sign, integer digits, fraction digits
_NUMBER = re.compile(r"([+-]?)(\d+)(?:\.(\d*))?")


def canonical_label(label: Any) -> str | None:
    """A raw label as the string it is known by; None when missing (None, NaN or blank).

    This is the one place that decides when two raw labels are the same class:
    - surrounding whitespace is ignored (`" pos "` is `pos`);
    - numbers are compared by value, however written: `1`, `01`, `+1`, `1.0`, ` 1 ` and the
      number 1.0 are the label `1`, `-0` is `0`, `0.50` is `0.5` (pandas turns an integer
      column with a gap into floats; spreadsheets write `1.0`);
    - JSON `true` / `false` (Python booleans) are the labels `true` / `false`, the same as
      those words written in a TSV file, and not `1` / `0`;
    - the case of other strings is kept: `Positive` and `positive` are different classes,
      since case can carry meaning (tags such as `B-PER`, grades `A` / `a`) and merging them
      would hide a mistake in the data; `label_vocabulary` warns about such pairs.
    """
    if label is None:
        return None
    if isinstance(label, bool):
        return "true" if label else "false"
    if isinstance(label, numbers.Real) and not isinstance(label, numbers.Integral):
        value = float(label)
        if math.isnan(value):
            return None
        label = repr(int(value)) if value.is_integer() else repr(value)
    text = str(label).strip()
    match = _NUMBER.fullmatch(text)
    if match is None:
        return text or None
    sign, whole, fraction = match.groups()
    whole, fraction = whole.lstrip("0") or "0", (fraction or "").rstrip("0")
    number = f"{whole}.{fraction}" if fraction else whole
    return f"-{number}" if sign == "-" and number != "0" else number


def raw_labels(rows: Rows) -> list[str] | None:
    if rows.labels is None:
        return None
    if len(rows.labels) != len(rows.texts):
        raise DataError(f"{rows.origin}: {len(rows.texts)} texts but {len(rows.labels)} labels")
    raw = []
    for index, label in enumerate(rows.labels):
        text = canonical_label(label)
        if text is None:
            raise DataError(f"{rows.where(index)}: empty label{rows.column(1)}")
        raw.append(text)
    return raw


def label_vocabulary(raw_labels: list[str]) -> list[str]:
    """Label names in id order: integers sorted numerically, other strings alphabetically.
    Labels that differ only in case are kept apart (`canonical_label`) with a warning."""
    unique = set(raw_labels)
    if all(label.lstrip("-").isdigit() for label in unique):
        return sorted(unique, key=int)
    folded: dict[str, list[str]] = {}
    for label in sorted(unique):
        folded.setdefault(label.casefold(), []).append(label)
    for same in (group for group in folded.values() if len(group) > 1):
        logger.warning("labels %s differ only in case: they are different classes", same)
    return sorted(unique)


def encode_labels(
    rows: Rows, raw: list[str], index: dict[str, int] | None, reason: str
) -> list[int]:
    """Label ids of `raw` by `index`; without an index (unlabelled training texts and no
    names), labels must already be ids."""
    ids = []
    for row, label in enumerate(raw):
        if index is None:
            if not label.isdigit():
                raise DataError(
                    f"{rows.where(row)}: label {label!r} is not an integer id; with unlabelled "
                    "training texts, give label_names to use string labels"
                )
            ids.append(int(label))
        elif label in index:
            ids.append(index[label])
        else:
            known = ", ".join(index)
            raise DataError(f"{rows.where(row)}: label {label!r} {reason} (known: {known})")
    return ids


def label_index(
    train_raw: list[str] | None,
    vocabulary: list[str] | None,
    label_names: Sequence[str] | None,
) -> tuple[dict[str, int] | None, list[str], str]:
    """The label index, the label names in id order and the reason a label outside the index
    is refused. `vocabulary`: the label strings in id order when the source fixes them;
    otherwise the sorted training labels (`train_raw`). `label_names` renames them (same
    count), or, for unlabelled training texts, is the vocabulary itself."""
    reason = "is not one of the task's labels"
    if vocabulary is None and train_raw is not None:
        vocabulary, reason = label_vocabulary(train_raw), "never occurs in the training split"
    index: dict[str, int] | None = None
    names: list[str] = []
    if vocabulary is not None:
        index = {label: i for i, label in enumerate(vocabulary)}
        names = list(vocabulary)
        if label_names:
            if len(label_names) != len(names):
                raise DataError(
                    f"label_names has {len(label_names)} names but the training data "
                    f"has {len(names)} labels ({', '.join(names)})"
                )
            names = [str(name) for name in label_names]
    elif label_names:  # unlabelled training texts: a label is a name or an id
        names = [str(name) for name in label_names]
        index = {str(i): i for i in range(len(names))} | {n: i for i, n in enumerate(names)}
    return index, names, reason
