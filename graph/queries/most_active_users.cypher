// Purpose: the users with the most interactions (the API precomputes their answers when it starts without a model).
//          Reads every user's INTERACTED degree from the degree store: one pass over the User label.
// Parameters: $limit: int
// Returns: user_id (string), by interactions descending, then user id
MATCH (u:User)
WITH u, COUNT { (u)-[:INTERACTED]->() } AS n
ORDER BY n DESC, u.userId ASC
LIMIT $limit
RETURN u.userId AS user_id
