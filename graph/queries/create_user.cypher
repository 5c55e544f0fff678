// Purpose: create a user (onboarding) with the genres they say they like and their attributes (age band, country,
//          ...); reports whether it existed.
// Parameters: $userId: string; $genres: list of genre names (unknown names are ignored); $attributes: list of
//             attribute ids "<kind>:<value>" (unknown ids are ignored)
// Returns: created (boolean), genres (names actually linked), attributes (attribute ids actually linked)
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
CALL (u) {
  UNWIND $attributes AS id
  MATCH (a:Attribute {attributeId: id})
  MERGE (u)-[:HAS_ATTRIBUTE]->(a)
  RETURN collect(DISTINCT a.attributeId) AS attributes
}
RETURN created, genres, attributes
