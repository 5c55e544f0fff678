// Purpose: record_skip.cypher without the exposure part, for an impression store outside the graph
//          (KGREC_IMPRESSION_STORE=sqlite: graph/impressions.py counts the ignored impression): the user is created on
//          first sight and the pair's interaction is read as it stands; nothing else is written.
// Parameters: $userId: string, $itemId: string
// Returns: one row when the item exists, else none: created_user (boolean), rating, weight, timestamp, polarity (1 or
//          -1), kinds, kind_counts of the pair's interaction as it stands (null when it has none)
MATCH (i:Item {itemId: $itemId})
WITH i, EXISTS { MATCH (:User {userId: $userId}) } AS existed
MERGE (u:User {userId: $userId})
WITH u, i, existed
OPTIONAL MATCH (u)-[r:INTERACTED]->(i)
RETURN NOT existed AS created_user, r.rating AS rating, r.weight AS weight, r.timestamp AS timestamp,
       coalesce(r.polarity, 1) AS polarity, r.kinds AS kinds, r.kindCounts AS kind_counts
