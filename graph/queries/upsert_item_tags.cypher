// Purpose: link items to tags with a weight (the load has already summed repeated pairs).
// Parameters: $rows: list of {item_id, tag, weight}
// Returns: nothing
UNWIND $rows AS row
MATCH (i:Item {itemId: row.item_id})
MERGE (t:Tag {name: row.tag})
MERGE (i)-[r:HAS_TAG]->(t)
SET r.weight = row.weight
