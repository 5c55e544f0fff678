// Purpose: a feedback that counts as an ignored impression (the default's skip; schema/kinds.py FeedbackKind.exposure):
//          the user (created on first sight) was shown the item once more and did nothing with it. Bumps the item's
//          count and last-shown time in the user's exposure arrays (shownItems, shownCounts, shownTimes, shownLists;
//          record_impressions.cypher; exposure fatigue reads the count, user_context.cypher), appending the item
//          (last list 0: rotation leaves it alone) when the arrays do not hold it, bounded to the $maxShown most
//          recent items; writes no interaction: the item is not hidden, training does not see it, rotation's list
//          number is untouched. The user's listsShown is written first (to itself), which takes the user's lock
//          before the arrays are read: a recorder writing the same user meanwhile waits, and neither loses the
//          other's update.
// Parameters: $userId: string, $itemId: string, $timestamp: int (epoch seconds), $maxShown: int
// Returns: one row when the item exists, else none: created_user (boolean), rating, weight, timestamp, polarity (1 or
//          -1), kinds, kind_counts of the pair's interaction as it stands (null when it has none)
MATCH (i:Item {itemId: $itemId})
WITH i, EXISTS { MATCH (:User {userId: $userId}) } AS existed
MERGE (u:User {userId: $userId})
SET u.listsShown = coalesce(u.listsShown, 0)
WITH u, i, existed, coalesce(u.shownItems, []) AS ids, coalesce(u.shownCounts, []) AS counts,
     coalesce(u.shownTimes, []) AS times, coalesce(u.shownLists, []) AS lists
WITH u, i, existed, ids, counts, times, lists,
     CASE WHEN $itemId IN ids
       THEN [k IN range(0, size(ids) - 1) |
              CASE WHEN ids[k] = $itemId THEN [ids[k], counts[k] + 1, $timestamp, lists[k]]
                   ELSE [ids[k], counts[k], times[k], lists[k]] END]
       ELSE [k IN range(0, size(ids) - 1) | [ids[k], counts[k], times[k], lists[k]]] + [[$itemId, 1, $timestamp, 0]]
     END AS merged
WITH u, i, existed,
     CASE WHEN size(merged) > $maxShown THEN merged[size(merged) - $maxShown..] ELSE merged END AS kept
SET u.shownItems = [e IN kept | e[0]], u.shownCounts = [e IN kept | e[1]], u.shownTimes = [e IN kept | e[2]],
    u.shownLists = [e IN kept | e[3]]
WITH u, i, existed
OPTIONAL MATCH (u)-[r:INTERACTED]->(i)
RETURN NOT existed AS created_user, r.rating AS rating, r.weight AS weight, r.timestamp AS timestamp,
       coalesce(r.polarity, 1) AS polarity, r.kinds AS kinds, r.kindCounts AS kind_counts
