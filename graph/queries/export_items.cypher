// Purpose: training export of every item id (also items nobody interacted with: the knowledge graph reaches them).
// Parameters: none
// Returns: item_ids (one record, a list of strings)
MATCH (i:Item)
RETURN collect(i.itemId) AS item_ids
