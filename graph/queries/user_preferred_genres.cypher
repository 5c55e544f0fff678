// Purpose: the genres a user said they like at onboarding (User-[:PREFERS]->Genre).
// Parameters: $userId: string
// Returns: genre
MATCH (:User {userId: $userId})-[:PREFERS]->(g:Genre)
RETURN g.name AS genre
ORDER BY genre
