// Purpose: change an item of the run-time catalogue (PATCH /items/{id}): its title, whether it is hidden, its
//          availability window. Only the fields named in $fields change; a null value removes the property (no
//          bound), and hidden is stored as true or removed.
// Parameters: $itemId: string; $fields: list of the fields to change ('title', 'hidden', 'available_from',
//             'available_until'); $title: string or null; $hidden: boolean or null; $availableFrom,
//             $availableUntil: int or null (epoch seconds)
// Returns: one row when the item exists: item_id, title, hidden (boolean), available_from, available_until
MATCH (i:Item {itemId: $itemId})
SET i.title = CASE WHEN 'title' IN $fields THEN $title ELSE i.title END,
    i.hidden = CASE WHEN 'hidden' IN $fields THEN (CASE WHEN $hidden THEN true END) ELSE i.hidden END,
    i.availableFrom = CASE WHEN 'available_from' IN $fields THEN $availableFrom ELSE i.availableFrom END,
    i.availableUntil = CASE WHEN 'available_until' IN $fields THEN $availableUntil ELSE i.availableUntil END
RETURN i.itemId AS item_id, i.title AS title, coalesce(i.hidden, false) AS hidden,
       i.availableFrom AS available_from, i.availableUntil AS available_until
