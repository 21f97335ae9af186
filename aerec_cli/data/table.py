"""The table every reader returns, and the checks it passes before it is split and stored.

Ids are int64 where every id of a column is a plain integer, else their exact text; the checks
(rating scale, ids that were not UTF-8, duplicate pairs) hold for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aerec_cli.errors import AerecError

# The longest id a dataset keeps: ids are names or numbers, and every reader of the stored id
# maps (Python's csv module among them, with its field limit) must read them back.
MAX_ID_CHARS = 256


@dataclass
class RatingsTable:
    """Ratings read from a source, before they are split and stored."""

    # user, item: int64 (every id a plain integer) or str; rating float32; timestamp int64
    # (-1 where the source has none).
    ratings: pd.DataFrame
    items: pd.DataFrame  # item (str), title (str), genres (str, '|'-separated)
    format: str
    rating_scale: tuple[float, float]
    warnings: list[str] = field(default_factory=list)
    # Named train/test splits shipped with the data (ml-100k's u1..u5, ua, ub).
    predefined_splits: dict[str, Callable[[], tuple[pd.DataFrame, pd.DataFrame]]] = field(
        default_factory=dict
    )
    # Where rating_scale comes from: the layout ("format"), --rating-scale ("given"), or the
    # ratings of a generic file ("ratings").
    scale_from: str = "format"


def parse_scale(text: str) -> tuple[float, float]:
    """``--rating-scale LOW,HIGH`` as two numbers, 0 < LOW < HIGH."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise AerecError(
            f"--rating-scale takes two numbers LOW,HIGH (e.g. 1,5 or 0.5,5), not {text!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        raise AerecError(
            f"--rating-scale {text}: LOW must be above 0 (0 stands for 'unrated' in aerec's "
            "matrices) and below HIGH, e.g. 1,5 or 0.5,5"
        )
    return low, high


def is_text(column: pd.Series) -> bool:
    """The column holds text (pandas' string dtype, or Python objects)."""
    return pd.api.types.is_string_dtype(column.dtype) or column.dtype == object


def concat_ratings(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack ratings frames; ids stay int64 only if they are int64 in every part."""
    parts = [p for p in parts if len(p)] or parts[:1]
    if not parts:
        return pd.DataFrame(
            {
                "user": pd.Series(dtype=np.int64),
                "item": pd.Series(dtype=np.int64),
                "rating": pd.Series(dtype=np.float32),
                "timestamp": pd.Series(dtype=np.int64),
            }
        )
    for column in ("user", "item"):
        if any(p[column].dtype != np.int64 for p in parts):
            parts = [p.astype({column: str}) if p[column].dtype == np.int64 else p for p in parts]
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    return pd.concat(parts, ignore_index=True)


def finish(table: RatingsTable) -> RatingsTable:
    """Check the scale, drop duplicate (user, item) pairs keeping the latest, tidy items."""
    low, high = table.rating_scale
    ratings = table.ratings
    outside = (ratings["rating"] < low) | (ratings["rating"] > high)
    if outside.any():
        first = int(np.flatnonzero(outside.to_numpy())[0]) + 1
        raise AerecError(
            f"{int(outside.sum())} rating(s) outside the {table.format} scale {low:g}-{high:g} "
            f"(first at rating {first}: {ratings['rating'].iloc[first - 1]:g}); check the file"
        )
    _check_utf8_ids(ratings)
    table.ratings = _drop_duplicates(ratings, table.warnings)
    items = table.items.astype({"item": str}).drop_duplicates("item", keep="last")
    table.items = items.reset_index(drop=True)
    return table


def _check_utf8_ids(ratings: pd.DataFrame) -> None:
    """Text ids hold no U+FFFD: bytes that were not UTF-8 (latin-1, say) were replaced by it,
    and two different ids could have become one."""
    for column in ("user", "item"):
        ids = ratings[column]
        if ids.dtype == np.int64 or not is_text(ids):
            continue
        replaced = ids.str.contains("\ufffd", regex=False).to_numpy(dtype=bool, na_value=False)
        if replaced.any():
            raise AerecError(
                f"{int(replaced.sum())} {column} id(s) hold bytes that are not UTF-8 text (first: "
                f"{ids[replaced].iloc[0]!r}); save the file as UTF-8, for example with: "
                "iconv -f latin1 -t utf-8 FILE > FILE.utf8.csv"
            )


def _drop_duplicates(ratings: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """Keep one rating per (user, item): the latest by timestamp, then the last line."""
    key = pair_key(ratings["user"], ratings["item"])
    if len(key) < 2 or bool((key[1:] > key[:-1]).all()):  # MovieLens files come sorted
        return ratings
    ordered = np.sort(key)
    if not (ordered[1:] == ordered[:-1]).any():
        return ratings
    del ordered
    # A stable sort by pair, then time: the last of each pair is the one to keep.
    order = np.lexsort((ratings["timestamp"].to_numpy(), key))
    grouped = key[order]
    kept = np.sort(order[np.r_[grouped[1:] != grouped[:-1], True]])
    warnings.append(
        f"{len(ratings) - len(kept)} duplicate (user, item) rating(s) dropped, keeping the latest"
    )
    return ratings.iloc[kept].reset_index(drop=True)


def pair_key(users: pd.Series, items: pd.Series) -> np.ndarray:
    """One int64 per row, equal exactly where the (user, item) pairs are equal."""
    if users.dtype == np.int64 and items.dtype == np.int64:
        u, i = users.to_numpy(), items.to_numpy()
        if len(u):
            u_low, u_high, i_low, i_high = int(u.min()), int(u.max()), int(i.min()), int(i.max())
            span = i_high - i_low + 1
            if (u_high - u_low + 1) * span < 2**62:
                return (u - u_low) * span + (i - i_low)
    u_codes, u_unique = pd.factorize(users)
    i_codes, i_unique = pd.factorize(items)
    return u_codes.astype(np.int64) * max(1, len(i_unique)) + i_codes
