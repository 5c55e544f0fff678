// Purpose: everything the API needs about a user before ranking, in one round trip: their interactions and the
//          genres they prefer (onboarding). No row when the user does not exist.
// Parameters: $userId: string
// Returns: interactions (list of [item_id, rating, weight, timestamp, polarity], most recent first — without timestamp
//          last — then by item id; rating, weight and timestamp may be null; polarity 1, or -1 for a negative one), preferred_genres (names, sorted)
MATCH (u:User {userId: $userId})
RETURN COLLECT {
         MATCH (u)-[r:INTERACTED]->(i)
         WITH [i.itemId, r.rating, r.weight, r.timestamp, coalesce(r.polarity, 1)] AS row
         ORDER BY coalesce(row[3], -9223372036854775808) DESC, row[0] ASC
         RETURN row
       } AS interactions,
       COLLECT { MATCH (u)-[:PREFERS]->(g:Genre) RETURN g.name AS name ORDER BY name } AS preferred_genres
