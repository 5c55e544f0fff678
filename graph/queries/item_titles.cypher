// Purpose: titles of the given items (and which of them exist).
// Parameters: $itemIds: list of strings
// Returns: item_id, title
UNWIND $itemIds AS id
MATCH (i:Item {itemId: id})
RETURN i.itemId AS item_id, i.title AS title
