// Purpose: one FOLLOWS relationship per directed pair; users are created when missing.
// Parameters: $rows: list of {follower_id, followee_id}
// Returns: nothing
UNWIND $rows AS row
MERGE (a:User {userId: row.follower_id})
MERGE (b:User {userId: row.followee_id})
MERGE (a)-[:FOLLOWS]->(b)
