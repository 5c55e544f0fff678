// Purpose: create users that do not exist yet (idempotent).
// Parameters: $rows: list of {user_id}
// Returns: nothing
UNWIND $rows AS row
MERGE (:User {userId: row.user_id})
