// Purpose: delete the given users and their relationships (benchmarks remove the users they ingested).
// Parameters: $userIds: list of strings
// Returns: deleted (int)
UNWIND $userIds AS userId
MATCH (u:User {userId: userId})
DETACH DELETE u
RETURN count(*) AS deleted
