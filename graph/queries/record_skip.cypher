// Purpose: a feedback that counts as an ignored impression (the default's skip; schema/kinds.py FeedbackKind.exposure):
//          the user (created on first sight) was shown the item once more and did nothing with it. Bumps the
//          (:User)-[:SHOWN]->(:Item) count and lastShown (exposure fatigue reads the count, user_context.cypher), and
//          writes no interaction: the item is not hidden, training does not see it, rotation's lastList is untouched.
//          The SHOWN carries the pair's key (userId, itemId: the shown_pair index record_impressions.cypher seeks).
// Parameters: $userId: string, $itemId: string, $timestamp: int (epoch seconds)
// Returns: one row when the item exists, else none: created_user (boolean), rating, weight, timestamp, polarity (1 or
//          -1), kinds, kind_counts of the pair's interaction as it stands (null when it has none)
MATCH (i:Item {itemId: $itemId})
WITH i, EXISTS { MATCH (:User {userId: $userId}) } AS existed
MERGE (u:User {userId: $userId})
MERGE (u)-[s:SHOWN]->(i)
SET s.count = coalesce(s.count, 0) + 1, s.lastShown = $timestamp, s.userId = $userId, s.itemId = $itemId
WITH u, i, existed
OPTIONAL MATCH (u)-[r:INTERACTED]->(i)
RETURN NOT existed AS created_user, r.rating AS rating, r.weight AS weight, r.timestamp AS timestamp,
       coalesce(r.polarity, 1) AS polarity, r.kinds AS kinds, r.kindCounts AS kind_counts
