// Purpose: training export of the user–item interactions, one record per user (every user, also those without
//          interactions) with that user's interactions as parallel lists, so the client decodes a few hundred
//          records of lists instead of one record per edge and the server never holds more than one user's lists.
// Parameters: none
// Returns: user_id, rows (list of [item_id, rating or null, weight or null, timestamp or null, polarity (1 or -1;
//          1 where unset)]); collect() drops nulls, so the values travel as rows (a list that holds a null is kept)
//          rather than parallel lists
MATCH (u:User)
CALL (u) {
  MATCH (u)-[r:INTERACTED]->(i:Item)
  RETURN collect([i.itemId, r.rating, r.weight, r.timestamp, coalesce(r.polarity, 1)]) AS rows
}
RETURN u.userId AS user_id, rows
