// Purpose: link items to their attributes (brand, category, price band, ...), creating attributes on first sight.
//          An attribute is a shared node keyed by "<kind>:<value>", so items with the same brand meet on one node.
// Parameters: $rows: list of {owner_id (item id), kind, value}
// Returns: nothing
UNWIND $rows AS row
MATCH (i:Item {itemId: row.owner_id})
MERGE (a:Attribute {attributeId: row.kind + ':' + row.value})
  ON CREATE SET a.kind = row.kind, a.value = row.value
MERGE (i)-[:HAS_ATTRIBUTE]->(a)
