// Purpose: record served lists (impressions), aggregated over the lists recorded together: one append-only
//          (:Recommendation) node per list with its items in the order shown (position = index), for attribution
//          and the per-variant report; per (user, item) the aggregate
//          (:User)-[:SHOWN {count, lastShown, lastList}]->(:Item) that exposure fatigue and rotation read
//          (user_context.cypher), once with the summed count; each user's listsShown once (lastList is its value
//          after the list that last showed the item); each item's impressions count once (exploration reads it,
//          item_exposure.cypher). A user or item gone meanwhile gets no SHOWN and no count (the list node is still
//          written). The three parts are independent: each ends in an aggregation, so an empty part leaves the others
//          alone. Rows are positional lists, not maps (a smaller Bolt message: no key repeated per row), users and
//          each user's items and the items sorted by id (locks taken in one order).
//          The (user, item) SHOWN is found by its key (userId, itemId) in the shown_pair index (graph.writers.key_shown
//          creates it), not by MERGE, whose Expand(Into) walks the user's SHOWN (hundreds per user, growing with
//          every list): 10.7k instead of 478k db hits for 50 lists of 20 on the benchmark graph. The user's
//          listsShown is set first, read inside its own SET (a read before the SET would take no lock and lose
//          another writer's update): its lock serialises writers of one user's exposure (another process's recorder,
//          record_skip.cypher's MERGE), so a pair cannot be created twice. A pair found is updated where it is found;
//          only the pairs not found go on to the item's seek and the CREATE, so the Eager that a CREATE of keyed SHOWN
//          after their seek needs holds the new pairs only (none once a user's lists repeat), not every pair, and
//          the existing pairs cost no item seek (a locking index seek in a write): 9-16% fewer bytes allocated by
//          Neo4j per list recorded (docs/benchmarks.md §5).
// Parameters: $lists: list of [recommendation_id, user_id (null: nobody's list), variant, model_version,
//             shown_at (epoch seconds), item_ids];
//             $users: list of [user_id, lists (int), items: list of [item_id, count, last_shown (epoch seconds),
//             list (int, from 1: the user's list among these that last showed the item)]];
//             $items: list of [item_id, count]
// Returns: nothing
UNWIND $lists AS row
CREATE (:Recommendation {recommendationId: row[0], userId: row[1], variant: row[2], modelVersion: row[3],
                         shownAt: row[4], itemIds: row[5]})
WITH count(*) AS created
UNWIND $users AS row
MATCH (u:User {userId: row[0]})
SET u.listsShown = coalesce(u.listsShown, 0) + row[1]
WITH u, row, u.listsShown - row[1] AS before
UNWIND row[2] AS shown
OPTIONAL MATCH ()-[s:SHOWN {userId: row[0], itemId: shown[0]}]->()
USING INDEX SEEK s:SHOWN(userId, itemId)
SET s.count = coalesce(s.count, 0) + shown[1], s.lastShown = shown[2], s.lastList = before + shown[3]
WITH u, row, before, shown, s
WHERE s IS NULL
MATCH (i:Item {itemId: shown[0]})
CREATE (u)-[:SHOWN {userId: row[0], itemId: shown[0], count: shown[1], lastShown: shown[2],
                    lastList: before + shown[3]}]->(i)
WITH count(*) AS merged
UNWIND $items AS row
MATCH (i:Item {itemId: row[0]})
SET i.impressions = coalesce(i.impressions, 0) + row[1]
