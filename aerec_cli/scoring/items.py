"""Items as the model sees them: neighbours (`aerec similar`) and item codes (`aerec embed`).

Similarity is the cosine of the learned item representation, centred on the mean item (item
orientation: the encoder code of each item's rating vector; user orientation: each item's row
of the output layer).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from aerec_cli.errors import AerecError
from aerec_cli.scoring.results import SimilarItem, SimilarItems
from aerec_cli.scoring.scorer import Scorer, open_run
from aerec_cli.scoring.topk import best_items, check_top


def similar_items(
    item: str,
    home: Path,
    *,
    top: int = 10,
    run: str | None = None,
    note: Callable[[str], None] | None = None,
) -> SimilarItems:
    """The items nearest to ``item`` by cosine similarity of the learned item representation."""
    check_top(top)
    served = open_run(home, run, note)
    index = served.item_index(item)
    if index is None:
        raise served.unknown_item(item)
    seen = served.item_seen
    if not seen[index]:
        raise AerecError(
            f"item {str(item).strip()} ({served.items.title(index)}) has no ratings in the train "
            f"split of {served.dataset}, so run {served.run.name} learned nothing about it"
        )
    unit = served.unit_codes()
    similarity = unit @ unit[index]
    exclude = np.flatnonzero(~seen)
    best = best_items(similarity, np.append(exclude, index), top)
    items = served.items
    return SimilarItems(
        item=items.ids[index],
        title=items.title(index),
        run=served.run.name,
        representation=served.item_code_name,
        items=[
            SimilarItem(
                item=items.ids[i],
                title=items.title(i),
                genres=items.genres[i],
                similarity=round(float(similarity[i]), 4),
            )
            for i in best
        ],
    )


def item_embeddings(
    home: Path, *, run: str | None = None, note: Callable[[str], None] | None = None
) -> tuple[Scorer, dict[str, list]]:
    """Columns item, title, code_0..code_{k-1}: the learned code of every item."""
    served = open_run(home, run, note)
    codes = served.item_codes()
    columns: dict[str, list] = {
        "item": list(served.items.ids),
        "title": [served.items.titles[i] for i in range(served.n_items)],
    }
    for k in range(codes.shape[1]):
        columns[f"code_{k}"] = codes[:, k].astype(np.float64).tolist()
    return served, columns
