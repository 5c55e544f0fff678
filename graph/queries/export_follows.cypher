// Purpose: training export of (:User)-[:FOLLOWS]->(:User), one record per follower with the users they follow.
// Parameters: none
// Returns: follower_id, followee_ids (list of strings); users who follow nobody are left out
MATCH (a:User)
CALL (a) {
  MATCH (a)-[:FOLLOWS]->(b:User)
  RETURN collect(b.userId) AS followee_ids
}
WITH a, followee_ids WHERE size(followee_ids) > 0
RETURN a.userId AS follower_id, followee_ids
