// Purpose: training export of every item id (also items nobody interacted with: the knowledge graph reaches them)
//          and its release year.
// Parameters: none
// Returns: item_ids (one record, a list of strings), years (aligned list: int, -1 where unknown)
MATCH (i:Item)
RETURN collect(i.itemId) AS item_ids, collect(coalesce(toInteger(i.year), -1)) AS years
