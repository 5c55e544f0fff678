// Purpose: one INTERACTED relationship per (user, item); properties replaced, so a reload is a no-op.
// Parameters: $rows: list of {user_id, item_id, rating, weight, timestamp}; items exist already,
//             users are created on first sight (so interactions can be written while users are still being read)
// Returns: nothing
UNWIND $rows AS row
MERGE (u:User {userId: row.user_id})
WITH u, row
MATCH (i:Item {itemId: row.item_id})
MERGE (u)-[r:INTERACTED]->(i)
SET r.rating = row.rating, r.weight = row.weight, r.timestamp = row.timestamp
