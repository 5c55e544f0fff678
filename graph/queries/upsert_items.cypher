// Purpose: create or update items; set title/year when given; add the domain label (e.g. Movie).
// Parameters: $rows: list of {item_id, title, year, imdb_id}; $labels: list of domain labels, validated against schema.model.ITEM_DOMAIN_LABELS
// Returns: nothing
UNWIND $rows AS row
MERGE (i:Item {itemId: row.item_id})
SET i.title = coalesce(row.title, i.title),
    i.year = coalesce(row.year, i.year),
    i.imdbId = coalesce(row.imdb_id, i.imdbId),
    i:$($labels)
