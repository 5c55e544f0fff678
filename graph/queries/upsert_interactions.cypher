// Purpose: one INTERACTED relationship per (user, item); properties replaced, so a reload is a no-op.
// Parameters: $rows: list of {user_id, item_id, rating, weight, timestamp}; users and items exist already
// Returns: nothing
UNWIND $rows AS row
MATCH (u:User {userId: row.user_id})
MATCH (i:Item {itemId: row.item_id})
MERGE (u)-[r:INTERACTED]->(i)
SET r.rating = row.rating, r.weight = row.weight, r.timestamp = row.timestamp
