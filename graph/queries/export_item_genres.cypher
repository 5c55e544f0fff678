// Purpose: training export of (:Item)-[:IN_GENRE]->(:Genre), one record per genre with its items.
// Parameters: none
// Returns: genre, item_ids (list of strings); genres without items are left out
MATCH (g:Genre)
CALL (g) {
  MATCH (i:Item)-[:IN_GENRE]->(g)
  RETURN collect(i.itemId) AS item_ids
}
WITH g, item_ids WHERE size(item_ids) > 0
RETURN g.name AS genre, item_ids
