// Purpose: the first statement of a feedback write (POST /feedback), in the transaction that then writes the pair with
//          upsert_interactions.cypher: create the user on first sight, bump its interactionsRev (which also takes the
//          user's lock, so two feedbacks of one pair combine one after the other, none lost), and read the pair's
//          interaction as it stands, to combine the new event into it (schema/kinds.py).
// Parameters: $userId: string, $itemId: string
// Returns: one row when the item exists, else none: created_user (boolean), found (boolean: the pair has an
//          interaction), rating, weight, timestamp, polarity (1 or -1), kinds, kind_counts (null when absent),
//          interactions and rev (ints: the user's INTERACTED degree and interactionsRev with this bump, read under the
//          user's lock: the version before this write is [interactions, rev - 1])
MATCH (i:Item {itemId: $itemId})
WITH i, EXISTS { MATCH (:User {userId: $userId}) } AS existed
MERGE (u:User {userId: $userId})
SET u.interactionsRev = coalesce(u.interactionsRev, 0) + 1
WITH u, i, existed
OPTIONAL MATCH (u)-[r:INTERACTED]->(i)
RETURN NOT existed AS created_user, r IS NOT NULL AS found, r.rating AS rating, r.weight AS weight,
       r.timestamp AS timestamp, coalesce(r.polarity, 1) AS polarity, r.kinds AS kinds, r.kindCounts AS kind_counts,
       COUNT { (u)-[:INTERACTED]->() } AS interactions, u.interactionsRev AS rev
