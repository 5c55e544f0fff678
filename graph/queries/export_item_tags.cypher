// Purpose: training export of (:Item)-[:HAS_TAG {weight}]->(:Tag), one record per tag with its items.
// Parameters: none
// Returns: tag, item_ids (list of strings), weights (aligned list of float); tags without items are left out
MATCH (t:Tag)
CALL (t) {
  MATCH (i:Item)-[r:HAS_TAG]->(t)
  RETURN collect(i.itemId) AS item_ids, collect(coalesce(r.weight, 1.0)) AS weights
}
WITH t, item_ids, weights WHERE size(item_ids) > 0
RETURN t.name AS tag, item_ids, weights
