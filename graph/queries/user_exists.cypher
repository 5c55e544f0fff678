// Purpose: whether a user with this id exists (callers decide 404s).
// Parameters: $userId: string
// Returns: exists (boolean)
RETURN EXISTS { MATCH (:User {userId: $userId}) } AS exists
