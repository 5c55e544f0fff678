// Purpose: create a user (onboarding) with the genres they say they like; reports whether it existed.
// Parameters: $userId: string; $genres: list of genre names (unknown names are ignored)
// Returns: created (boolean), genres (names actually linked)
OPTIONAL MATCH (existing:User {userId: $userId})
WITH existing IS NULL AS created
MERGE (u:User {userId: $userId})
WITH u, created
CALL (u) {
  UNWIND $genres AS name
  MATCH (g:Genre {name: name})
  MERGE (u)-[:PREFERS]->(g)
  RETURN collect(g.name) AS genres
}
RETURN created, genres
