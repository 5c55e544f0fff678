// Purpose: the items the run-time catalogue restricts or added: hidden, with an availability window, or added
//          through the API (addedAt). The API holds them in memory (api/catalogue.py) to leave unavailable items out
//          of the model's ranking (degraded answers included) and to offer added items, which no model knows yet, in
//          the new-arrival positions. Each branch reads one property through its index (schema/ddl.py).
// Parameters: none
// Returns: item_id, hidden (boolean), available_from, available_until, added_at (epoch seconds or null), one row per
//          item
MATCH (i:Item)
WHERE i.hidden = true
RETURN i.itemId AS item_id, true AS hidden, i.availableFrom AS available_from, i.availableUntil AS available_until,
       i.addedAt AS added_at
UNION
MATCH (i:Item)
WHERE i.availableFrom IS NOT NULL
RETURN i.itemId AS item_id, coalesce(i.hidden, false) AS hidden, i.availableFrom AS available_from,
       i.availableUntil AS available_until, i.addedAt AS added_at
UNION
MATCH (i:Item)
WHERE i.availableUntil IS NOT NULL
RETURN i.itemId AS item_id, coalesce(i.hidden, false) AS hidden, i.availableFrom AS available_from,
       i.availableUntil AS available_until, i.addedAt AS added_at
UNION
MATCH (i:Item)
WHERE i.addedAt IS NOT NULL
RETURN i.itemId AS item_id, coalesce(i.hidden, false) AS hidden, i.availableFrom AS available_from,
       i.availableUntil AS available_until, i.addedAt AS added_at
