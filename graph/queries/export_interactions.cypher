// Purpose: training export of the user–item interactions, one record per user (every user, also those without
//          interactions) with that user's interactions as parallel lists, so the client decodes a few hundred
//          records of lists instead of one record per edge and the server never holds more than one user's lists.
// Parameters: none
// Returns: user_id, item_ids (list of strings), ratings (list of float or null), weights (list of float),
//          timestamps (list of int or null); the four lists are aligned
MATCH (u:User)
CALL (u) {
  MATCH (u)-[r:INTERACTED]->(i:Item)
  RETURN collect(i.itemId) AS item_ids, collect(r.rating) AS ratings, collect(r.weight) AS weights,
         collect(r.timestamp) AS timestamps
}
RETURN u.userId AS user_id, item_ids, ratings, weights, timestamps
