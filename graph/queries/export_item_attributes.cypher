// Purpose: training export of (:Item)-[:HAS_ATTRIBUTE]->(:Attribute), one record per attribute with its items.
// Parameters: none
// Returns: attribute (the attributeId, "<kind>:<value>"), item_ids (list of strings); attributes without items are
//          left out
MATCH (a:Attribute)
CALL (a) {
  MATCH (i:Item)-[:HAS_ATTRIBUTE]->(a)
  RETURN collect(i.itemId) AS item_ids
}
WITH a, item_ids WHERE size(item_ids) > 0
RETURN a.attributeId AS attribute, item_ids
