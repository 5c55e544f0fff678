// Purpose: training export of the genres users chose at onboarding ((:User)-[:PREFERS]->(:Genre)), one record per genre.
// Parameters: none
// Returns: genre, user_ids (list of strings); genres nobody prefers are left out
MATCH (g:Genre)
CALL (g) {
  MATCH (u:User)-[:PREFERS]->(g)
  RETURN collect(u.userId) AS user_ids
}
WITH g, user_ids WHERE size(user_ids) > 0
RETURN g.name AS genre, user_ids
