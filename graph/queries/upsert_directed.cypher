// Purpose: link directors to items; a person is keyed by personId and keeps the first name seen.
// Parameters: $rows: list of {item_id, person_id, name}
// Returns: nothing
UNWIND $rows AS row
MATCH (i:Item {itemId: row.item_id})
MERGE (p:Person {personId: row.person_id})
  ON CREATE SET p.name = row.name
SET p:Director
MERGE (p)-[:DIRECTED]->(i)
