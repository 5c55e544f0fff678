// Purpose: every item id in the graph (to validate references before writing).
// Parameters: none
// Returns: item_id
MATCH (i:Item)
RETURN i.itemId AS item_id
