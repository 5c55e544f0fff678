// Purpose: give the SHOWN of a batch of users their key (userId, itemId), which record_impressions.cypher seeks in the
//          shown_pair index: the users after $after in userId order (the user_user_id index), $limit of them. Run in
//          batches until none is left (graph.writers.key_shown) before the index is created; a SHOWN already keyed
//          is left as it is.
// Parameters: $after: string (the last userId of the previous batch; "" for the first), $limit: int (users)
// Returns: last (the batch's last userId; null when no user is left), users (int), keyed (int: SHOWN given a key)
MATCH (u:User)
WHERE u.userId > $after
WITH u
ORDER BY u.userId
LIMIT $limit
CALL (u) {
  OPTIONAL MATCH (u)-[s:SHOWN]->(i:Item)
  WHERE s.userId IS NULL OR s.itemId IS NULL
  SET s.userId = u.userId, s.itemId = i.itemId
  RETURN count(s) AS keyed
}
RETURN max(u.userId) AS last, count(*) AS users, sum(keyed) AS keyed
